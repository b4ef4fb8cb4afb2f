package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/pgtest"

	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func setup(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPool(t, "tasks_store", "tasks", func(ctx context.Context, u string) error {
		return pg.Migrate(ctx, pg.Config{URL: u, Schema: "tasks"}, migrations.FS, nil)
	})
	return store.New(pool, nil, nil), pool
}

func actor(tier task.Tier) store.Actor {
	return store.Actor{UserID: uuid.NewString(), Tier: tier, Source: task.SourceUser}
}

// checkOrder asserts the task's subtasks have order_index 0..n-1 and the task's counts
// match its rows.
func checkOrder(t *testing.T, ctx context.Context, s *store.Store, a store.Actor, taskID string, wantIDs []string) {
	t.Helper()
	subs, err := s.ListSubtasks(ctx, a.UserID, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != len(wantIDs) {
		t.Fatalf("%d subtasks, want %d", len(subs), len(wantIDs))
	}
	done := 0
	for i, st := range subs {
		if st.OrderIndex != i {
			t.Fatalf("order_index %d at position %d", st.OrderIndex, i)
		}
		if st.ID != wantIDs[i] {
			t.Fatalf("position %d is %s, want %s", i, st.ID, wantIDs[i])
		}
		if st.Completed {
			done++
		}
	}
	d, err := s.GetTask(ctx, a.UserID, taskID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Task.SubtaskCount != len(subs) || d.Task.SubtaskCompletedCount != done {
		t.Fatalf("counts %d/%d, rows %d/%d", d.Task.SubtaskCount, d.Task.SubtaskCompletedCount, len(subs), done)
	}
}

// TestSubtaskOrderProperty: any sequence of create, delete, reorder and toggle keeps
// order_index gapless and unique and the task's counts right.
func TestSubtaskOrderProperty(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	for run := 0; run < 4; run++ {
		a := actor(task.Pro)
		tk, err := s.CreateTask(ctx, a, task.NewTask{Title: "prop"})
		if err != nil {
			t.Fatal(err)
		}
		var model []string
		for step := 0; step < 60; step++ {
			switch op := rng.IntN(5); {
			case op <= 1:
				n := 1 + rng.IntN(3)
				titles := make([]string, n)
				for i := range titles {
					titles[i] = fmt.Sprintf("s%d-%d", step, i)
				}
				subs, err := s.CreateSubtasks(ctx, a, tk.ID, titles, task.SourceAI)
				if len(model)+n > task.MaxSubtasksPro {
					if apperr.CodeOf(err) != apperr.LimitExceeded {
						t.Fatalf("over the limit: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, st := range subs {
					model = append(model, st.ID)
				}
			case op == 2 && len(model) > 0:
				i := rng.IntN(len(model))
				if err := s.DeleteSubtask(ctx, a, model[i]); err != nil {
					t.Fatal(err)
				}
				model = append(model[:i], model[i+1:]...)
			case op == 3:
				perm := append([]string(nil), model...)
				rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
				if rng.IntN(4) == 0 && len(perm) > 0 { // a bad order is refused and changes nothing
					bad := append(perm[:len(perm)-1:len(perm)-1], perm[0])
					if _, err := s.ReorderSubtasks(ctx, a, tk.ID, bad); apperr.CodeOf(err) != apperr.Validation {
						t.Fatalf("bad reorder: %v", err)
					}
					break
				}
				if _, err := s.ReorderSubtasks(ctx, a, tk.ID, perm); err != nil {
					t.Fatal(err)
				}
				model = perm
			case op == 4 && len(model) > 0:
				done := rng.IntN(2) == 0
				if _, err := s.UpdateSubtask(ctx, a, model[rng.IntN(len(model))], store.SubtaskPatch{Completed: &done}); err != nil {
					t.Fatal(err)
				}
			}
			checkOrder(t, ctx, s, a, tk.ID, model)
		}
	}
}

func TestSubtaskLimitAndOwnership(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	a := actor(task.Free)
	tk, err := s.CreateTask(ctx, a, task.NewTask{Title: "x"})
	if err != nil {
		t.Fatal(err)
	}
	titles := make([]string, task.MaxSubtasksFree)
	for i := range titles {
		titles[i] = "s"
	}
	subs, err := s.CreateSubtasks(ctx, a, tk.ID, titles, task.SourceUser)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateSubtasks(ctx, a, tk.ID, []string{"11th"}, task.SourceUser)
	if e, ok := apperr.As(err); !ok || e.Code != apperr.LimitExceeded || e.Details[0].Message != "10" || e.Details[1].Message != "10" {
		t.Fatalf("got %v", err)
	}
	other := actor(task.Free)
	if _, err := s.CreateSubtasks(ctx, other, tk.ID, []string{"x"}, task.SourceUser); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("other user's task: %v", err)
	}
	done := true
	if _, err := s.UpdateSubtask(ctx, other, subs[0].ID, store.SubtaskPatch{Completed: &done}); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("other user's subtask: %v", err)
	}
	if err := s.DeleteSubtask(ctx, other, subs[0].ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("other user's subtask: %v", err)
	}
	if _, err := s.ReorderSubtasks(ctx, other, tk.ID, nil); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("other user's reorder: %v", err)
	}
	// Pro: 20.
	p := actor(task.Pro)
	ptk, _ := s.CreateTask(ctx, p, task.NewTask{Title: "x"})
	twenty := make([]string, task.MaxSubtasksPro)
	for i := range twenty {
		twenty[i] = "s"
	}
	if _, err := s.CreateSubtasks(ctx, p, ptk.ID, twenty, task.SourceUser); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSubtasks(ctx, p, ptk.ID, []string{"21st"}, task.SourceUser); apperr.CodeOf(err) != apperr.LimitExceeded {
		t.Fatalf("got %v", err)
	}
}

func TestTombstonesKeepThreeAndExpire(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()
	a := actor(task.Free)
	var tombs []string
	for i := 0; i < 4; i++ {
		tk, err := s.CreateTask(ctx, a, task.NewTask{Title: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		tomb, err := s.DeleteTask(ctx, a, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		tombs = append(tombs, tomb.ID)
	}
	list, total, err := s.ListTombstones(ctx, a.UserID, store.Page{Limit: 10})
	if err != nil || total != 3 || len(list) != 3 {
		t.Fatalf("%d tombstones (%v), want 3", total, err)
	}
	got := []string{list[0].ID, list[1].ID, list[2].ID}
	sort.Strings(got)
	wantIDs := append([]string(nil), tombs[1:]...)
	sort.Strings(wantIDs)
	if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
		t.Fatalf("kept %v, want the newest three %v", got, wantIDs)
	}
	if _, err := s.Recover(ctx, a, tombs[0]); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("evicted: %v", err)
	}
	// Expired: 404, and the purge removes it.
	if _, err := pool.Exec(ctx, `UPDATE tombstones SET expires_at = now() - interval '1 second' WHERE id = $1`, tombs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recover(ctx, a, tombs[1]); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("expired: %v", err)
	}
	if n, err := s.PurgeTombstones(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d (%v)", n, err)
	}
	if _, err := s.Recover(ctx, actor(task.Free), tombs[2]); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another user's tombstone: %v", err)
	}
	if _, err := s.Recover(ctx, a, tombs[2]); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeActivityAndOperations(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()
	a := actor(task.Free)
	tk, err := s.CreateTask(ctx, a, task.NewTask{Title: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTask(ctx, a, task.NewTask{Title: "y"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyOnce(ctx, a, "op", "complete_task", tk.ID, func(pgx.Tx) ([]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE activity SET created_at = now() - interval '31 days' WHERE entity_id = $1`, tk.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE applied_operations SET created_at = now() - interval '8 days'`); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeActivity(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d activity rows (%v), want 1", n, err)
	}
	if _, total, _ := s.ListActivity(ctx, a.UserID, store.ActivityFilter{}, store.Page{Limit: 10}); total != 1 {
		t.Fatalf("%d rows left", total)
	}
	if n, err := s.PurgeOperations(ctx); err != nil || n != 1 {
		t.Fatalf("purged %d operations (%v)", n, err)
	}
}

// TestLimitCountsRowsAfterDowngrade: Pro creates are not counted anywhere, so the free
// limit after a downgrade holds the user to the tasks they really have, archived and
// hidden ones included; deletes bring them back under it.
func TestLimitCountsRowsAfterDowngrade(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	pro := actor(task.Pro)
	var ids []string
	for i := range task.MaxTasksFree + 2 {
		tk, err := s.CreateTask(ctx, pro, task.NewTask{Title: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tk.ID)
	}
	yes := true
	if _, _, err := s.UpdateTask(ctx, pro, ids[0], task.Patch{Archived: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateTask(ctx, pro, ids[1], task.Patch{Hidden: &yes}); err != nil {
		t.Fatal(err)
	}
	free := pro
	free.Tier = task.Free
	_, err := s.CreateTask(ctx, free, task.NewTask{Title: "over"})
	if e, ok := apperr.As(err); !ok || e.Code != apperr.LimitExceeded || e.Details[0].Message != "50" || e.Details[1].Message != "52" {
		t.Fatalf("free create with 52 tasks: %v", err)
	}
	for _, id := range ids[:3] {
		if _, err := s.DeleteTask(ctx, free, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateTask(ctx, free, task.NewTask{Title: "the 50th"}); err != nil {
		t.Fatalf("free create with 49 tasks: %v", err)
	}
	if _, err := s.CreateTask(ctx, free, task.NewTask{Title: "51st"}); apperr.CodeOf(err) != apperr.LimitExceeded {
		t.Fatalf("free create with 50 tasks: %v", err)
	}
}

// TestNoteLimitUnderConcurrency: 20 concurrent creates at 19 notes leave exactly 20, and
// a recovery is checked against the same limit.
func TestNoteLimitUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, pool := setup(t)
	ctx := context.Background()
	a := actor(task.Free)
	var first task.Note
	for i := range task.MaxNotesFree - 1 {
		n, err := s.CreateNote(ctx, a, task.NewNote{Content: fmt.Sprintf("n%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = n
		}
	}
	errs := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := s.CreateNote(ctx, a, task.NewNote{Content: fmt.Sprintf("race %d", i)})
			errs <- err
		}()
	}
	created := 0
	for range 20 {
		switch err := <-errs; {
		case err == nil:
			created++
		case apperr.CodeOf(err) != apperr.LimitExceeded:
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM notes WHERE user_id = $1`, a.UserID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if created != 1 || n != task.MaxNotesFree {
		t.Fatalf("%d of 20 concurrent creates succeeded, %d notes; want 1 and %d", created, n, task.MaxNotesFree)
	}
	tomb, err := s.DeleteNote(ctx, a, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateNote(ctx, a, task.NewNote{Content: "fills the slot"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recover(ctx, a, tomb.ID); apperr.CodeOf(err) != apperr.LimitExceeded {
		t.Fatalf("recovery at the limit: %v", err)
	}
}
