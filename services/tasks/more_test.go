package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
)

func TestSubtasksHTTP(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "parent"})
	base := "/api/v1/tasks/" + id(tk) + "/subtasks"
	var ids []string
	for _, title := range []string{"a", "b", "c"} {
		r := u.do(t, "POST", base, map[string]any{"title": title})
		want(t, r, 201)
		ids = append(ids, id(r.data(t)))
	}
	r := u.do(t, "POST", base, map[string]any{"title": "ai", "source": "ai"})
	want(t, r, 201)
	aiSub := r.data(t)
	if aiSub["source"] != "ai" || aiSub["order_index"] != float64(3) {
		t.Fatalf("%v", aiSub)
	}
	ids = append(ids, id(aiSub))
	wantError(t, u.do(t, "POST", base, map[string]any{"title": " "}), 400, "VALIDATION_ERROR", "title")
	wantError(t, u.do(t, "POST", base, map[string]any{"title": "x", "source": "robot"}), 400, "VALIDATION_ERROR", "source")
	// Delete closes the gap.
	want(t, u.do(t, "DELETE", "/api/v1/subtasks/"+ids[1], nil), 200)
	items, p := u.do(t, "GET", base, nil).list(t)
	if len(items) != 3 || p["total"] != float64(3) {
		t.Fatalf("%v", items)
	}
	for i, it := range items {
		if it.(map[string]any)["order_index"] != float64(i) {
			t.Fatalf("gap after delete: %v", items)
		}
	}
	// Reorder: all ids exactly once.
	order := []string{ids[3], ids[0], ids[2]}
	r = u.do(t, "PUT", base+"/order", map[string]any{"subtask_ids": order})
	want(t, r, 200)
	got := r.json(t)["data"].([]any)
	for i, it := range got {
		if id(it.(map[string]any)) != order[i] || it.(map[string]any)["order_index"] != float64(i) {
			t.Fatalf("after reorder %v", got)
		}
	}
	wantError(t, u.do(t, "PUT", base+"/order", map[string]any{"subtask_ids": order[:2]}), 400, "VALIDATION_ERROR", "subtask_ids")
	wantError(t, u.do(t, "PUT", base+"/order", map[string]any{"subtask_ids": []string{order[0], order[0], order[1]}}), 400, "VALIDATION_ERROR", "subtask_ids")
	wantError(t, u.do(t, "PUT", base+"/order", map[string]any{"subtask_ids": []string{order[0], order[1], "nope"}}), 400, "VALIDATION_ERROR", "subtask_ids")
	wantError(t, u.do(t, "PUT", base+"/order", map[string]any{}), 400, "VALIDATION_ERROR", "subtask_ids")
	// Title edit via PUT alias, then limits: 10 per task for free.
	r = u.do(t, "PUT", "/api/v1/subtasks/"+ids[0], map[string]any{"title": "renamed"})
	want(t, r, 200)
	if r.data(t)["title"] != "renamed" {
		t.Fatalf("%s", r.Body)
	}
	for i := 0; i < 7; i++ {
		want(t, u.do(t, "POST", base, map[string]any{"title": "fill"}), 201)
	}
	wantError(t, u.do(t, "POST", base, map[string]any{"title": "11th"}), 409, "LIMIT_EXCEEDED", "limit", "count")
	// Another user sees nothing.
	o := e.user(t, "free")
	wantError(t, o.do(t, "GET", base, nil), 404, "NOT_FOUND")
	wantError(t, o.do(t, "PATCH", "/api/v1/subtasks/"+ids[0], map[string]any{"completed": true}), 404, "NOT_FOUND")
	wantError(t, o.do(t, "DELETE", "/api/v1/subtasks/"+ids[0], nil), 404, "NOT_FOUND")
	wantError(t, u.do(t, "PATCH", "/api/v1/subtasks/not-a-uuid", map[string]any{"completed": true}), 404, "NOT_FOUND")
}

func TestNotesHTTP(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	r := u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "remember"})
	want(t, r, 201)
	n := r.data(t)
	if n["voice_url"] != "" || n["voice_duration_seconds"] != nil || n["transcription_status"] != "" || n["archived"] != false {
		t.Fatalf("%v", n)
	}
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": ""}), 400, "VALIDATION_ERROR", "content")
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": strings.Repeat("x", 2001)}), 400, "VALIDATION_ERROR", "content")
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "", "voice_url": "https://cdn.example/a.m4a", "voice_duration_seconds": 30}), 403, "PRO_TIER_REQUIRED")

	path := "/api/v1/notes/" + id(n)
	want(t, u.do(t, "PATCH", path, map[string]any{"archived": true}), 200)
	wantError(t, u.do(t, "PATCH", path, map[string]any{"content": "edit"}), 409, "ARCHIVED")
	r = u.do(t, "PATCH", path, map[string]any{"archived": false, "content": "edited"})
	want(t, r, 200)
	if d := r.data(t); d["content"] != "edited" || d["archived"] != false || d["version"] != float64(3) {
		t.Fatalf("%v", d)
	}
	want(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "second"}), 201)
	want(t, u.do(t, "PATCH", path, map[string]any{"archived": true}), 200)
	all, _ := u.do(t, "GET", "/api/v1/notes", nil).list(t)
	arch, _ := u.do(t, "GET", "/api/v1/notes?archived=true", nil).list(t)
	open, _ := u.do(t, "GET", "/api/v1/notes?archived=false", nil).list(t)
	if len(all) != 2 || len(arch) != 1 || len(open) != 1 || id(arch[0].(map[string]any)) != id(n) {
		t.Fatalf("filters: all %d archived %d open %d", len(all), len(arch), len(open))
	}
	o := e.user(t, "free")
	wantError(t, o.do(t, "GET", path, nil), 404, "NOT_FOUND")
	wantError(t, o.do(t, "PATCH", path, map[string]any{"archived": false}), 404, "NOT_FOUND")
	wantError(t, o.do(t, "DELETE", path, nil), 404, "NOT_FOUND")

	r = u.do(t, "DELETE", path, nil)
	want(t, r, 200)
	del := r.data(t)
	r = u.do(t, "POST", "/api/v1/tombstones/"+del["tombstone_id"].(string)+"/recover", nil)
	want(t, r, 200)
	if rn := r.data(t)["note"].(map[string]any); id(rn) != id(n) || rn["version"] != float64(1) || rn["content"] != "edited" {
		t.Fatalf("%s", r.Body)
	}
	// Free: 20 notes.
	for i := 0; i < 18; i++ {
		want(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "n"}), 201)
	}
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "21st"}), 409, "LIMIT_EXCEEDED", "limit", "count", "achievement")
}

// TestVoiceNoteTranscription: a Pro voice note starts pending, emits
// tasks.note.voice_created, and ai.transcription.completed fills it in once.
func TestVoiceNoteTranscription(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "pro")
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"voice_url": "http://cdn.example/a.m4a", "voice_duration_seconds": 30}), 400, "VALIDATION_ERROR", "voice_url")
	wantError(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"voice_url": "https://cdn.example/a.m4a", "voice_duration_seconds": 301}), 400, "AUDIO_DURATION_EXCEEDED")
	r := u.do(t, "POST", "/api/v1/notes", map[string]any{"voice_url": "https://cdn.example/a.m4a", "voice_duration_seconds": 30})
	want(t, r, 201)
	n := r.data(t)
	if n["transcription_status"] != "pending" || n["content"] != "" || n["voice_duration_seconds"] != float64(30) {
		t.Fatalf("%v", n)
	}
	ev := e.waitEvents(t, "tasks.note.voice_created", u.ID, 1)[0]
	var vc map[string]any
	if err := json.Unmarshal(ev.Data, &vc); err != nil || vc["note_id"] != id(n) {
		t.Fatalf("%s", ev.Data)
	}
	done := e.publish(t, aievents.TypeTranscriptionCompleted, u.ID, aievents.Transcription{NoteID: id(n), UserID: u.ID, Text: "buy milk"})
	e.redeliver(t, done)
	eventually(t, "transcription applied", func() bool {
		d := u.do(t, "GET", "/api/v1/notes/"+id(n), nil).data(t)
		return d["transcription_status"] == "completed" && d["content"] == "buy milk"
	})
	var v int
	if err := e.Pool.QueryRow(context.Background(), `SELECT version FROM notes WHERE id = $1`, id(n)).Scan(&v); err != nil || v != 2 {
		t.Fatalf("version %d (%v): the event must apply once", v, err)
	}
}

// publish sends an event of another service to JetStream and returns it.
func (e *env) publish(t testing.TB, typ, userID string, data any) events.Event {
	t.Helper()
	ev, err := events.New("perpetua/test", typ, userID, data)
	if err != nil {
		t.Fatal(err)
	}
	e.send(t, ev)
	return ev
}

// redeliver publishes ev again under a new message id, as a redelivery would arrive.
func (e *env) redeliver(t testing.TB, ev events.Event) { t.Helper(); e.send(t, ev, uuid.NewString()) }

func (e *env) send(t testing.TB, ev events.Event, msgID ...string) {
	t.Helper()
	nc, err := nats.Connect(e.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	mid := ev.ID
	if len(msgID) > 0 {
		mid = msgID[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, ev.Type, b, jetstream.WithMsgID(mid)); err != nil {
		t.Fatal(err)
	}
}

// TestUserDeletedErasesEverything: auth.user.deleted removes every row of the user only.
func TestUserDeletedErasesEverything(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	keep := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "t"})
	want(t, u.do(t, "POST", "/api/v1/tasks/"+id(tk)+"/subtasks", map[string]any{"title": "s"}), 201)
	want(t, u.do(t, "POST", "/api/v1/notes", map[string]any{"content": "n"}), 201)
	gone := u.createTask(t, map[string]any{"title": "deleted"})
	want(t, u.do(t, "DELETE", "/api/v1/tasks/"+id(gone), nil), 200)
	keep.createTask(t, map[string]any{"title": "kept"})
	e.publish(t, authevents.TypeUserDeleted, u.ID, authevents.UserDeleted{UserID: u.ID, DeletedAt: time.Now().UTC()})
	count := func(userID string) int {
		var n int
		err := e.Pool.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM tasks WHERE user_id = $1) + (SELECT count(*) FROM subtasks WHERE user_id = $1) +
			(SELECT count(*) FROM notes WHERE user_id = $1) + (SELECT count(*) FROM tombstones WHERE user_id = $1) +
			(SELECT count(*) FROM activity WHERE user_id = $1) + (SELECT count(*) FROM user_counts WHERE user_id = $1) +
			(SELECT count(*) FROM notifications WHERE user_id = $1)`, userID).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, "erasure", func() bool { return count(u.ID) == 0 })
	if count(keep.ID) == 0 {
		t.Fatal("another user's rows were erased")
	}
	items, _ := u.do(t, "GET", "/api/v1/tasks", nil).list(t)
	if len(items) != 0 {
		t.Fatal("tasks remain")
	}
}

// TestBillingActivityAndNotificationStream: billing events land in the activity log once;
// a subscription change becomes a notification pushed over SSE to a connected client,
// and a reconnect with Last-Event-ID replays what it missed.
func TestBillingActivityAndNotificationStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")

	req, err := http.NewRequest("GET", e.URL+"/api/v1/notifications/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream closed")
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-timeout:
				t.Fatalf("no %q line", prefix)
			}
		}
	}
	next(": heartbeat")

	credits := e.publish(t, billingevents.TypeCreditsConsumed, u.ID, billingevents.Credits{UserID: u.ID, OperationID: "op", Amount: 1, Reason: "ai.chat", Balance: 4})
	e.redeliver(t, credits)
	sub := e.publish(t, billingevents.TypeSubscriptionActivated, u.ID, billingevents.Subscription{UserID: u.ID, Tier: "pro", Status: "active", Seq: 1})
	e.redeliver(t, sub)

	idLine := next("id: ")
	data := next("data: ")
	var n map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &n); err != nil {
		t.Fatal(err)
	}
	if n["type"] != "subscription" || n["title"] != "Welcome to Pro" || n["message"] != n["body"] || n["read"] != false {
		t.Fatalf("notification %v", n)
	}
	eventually(t, "activity rows", func() bool {
		items, _ := u.do(t, "GET", "/api/v1/activity?source=system", nil).list(t)
		return len(items) == 2
	})
	items, _ := u.do(t, "GET", "/api/v1/activity?entity_type=credits", nil).list(t)
	if len(items) != 1 || items[0].(map[string]any)["action"] != "credits.consumed" {
		t.Fatalf("credits activity %v", items)
	}
	list, _ := u.do(t, "GET", "/api/v1/notifications", nil).list(t)
	if len(list) != 1 {
		t.Fatalf("one notification per event, got %d", len(list))
	}

	// Reconnect from before it: replayed from the table.
	replayCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	rq, _ := http.NewRequestWithContext(replayCtx, "GET", e.URL+"/api/v1/notifications/stream", nil)
	rq.Header.Set("Authorization", "Bearer "+u.Token)
	rq.Header.Set("Last-Event-ID", "0")
	rr, err := http.DefaultClient.Do(rq)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rr.Body)
	found := false
	for sc.Scan() {
		if sc.Text() == idLine {
			found = true
			break
		}
	}
	rr.Body.Close()
	if !found {
		t.Fatal("replay did not resend the notification")
	}

	// Read, read-all, delete.
	nid := n["id"].(string)
	r := u.do(t, "PATCH", "/api/v1/notifications/"+nid+"/read", nil)
	want(t, r, 200)
	if d := r.data(t); d["read"] != true || d["read_at"] == nil {
		t.Fatalf("%v", d)
	}
	want(t, u.do(t, "POST", "/api/v1/notifications/read-all", nil), 200)
	unread, _ := u.do(t, "GET", "/api/v1/notifications?read=false", nil).list(t)
	if len(unread) != 0 {
		t.Fatal("unread remain")
	}
	o := e.user(t, "free")
	wantError(t, o.do(t, "PATCH", "/api/v1/notifications/"+nid+"/read", nil), 404, "NOT_FOUND")
	wantError(t, o.do(t, "DELETE", "/api/v1/notifications/"+nid, nil), 404, "NOT_FOUND")
	want(t, u.do(t, "DELETE", "/api/v1/notifications/"+nid, nil), 200)
	wantError(t, u.do(t, "DELETE", "/api/v1/notifications/"+nid, nil), 404, "NOT_FOUND")
	wantError(t, u.do(t, "GET", "/api/v1/notifications/stream", nil, "Last-Event-ID", "x"), 400, "VALIDATION_ERROR", "Last-Event-ID")
}

func TestActivityLog(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free")
	tk := u.createTask(t, map[string]any{"title": "a"})
	want(t, u.do(t, "PATCH", "/api/v1/tasks/"+id(tk), map[string]any{"completed": true}), 200)
	items, p := u.do(t, "GET", "/api/v1/activity?entity_id="+id(tk), nil).list(t)
	if len(items) != 3 || p["total"] != float64(3) {
		t.Fatalf("%v", items)
	}
	actions := []string{}
	for _, it := range items {
		m := it.(map[string]any)
		actions = append(actions, m["action"].(string))
		if m["source"] != "user" || m["entity_type"] != "task" {
			t.Fatalf("%v", m)
		}
	}
	if strings.Join(actions, ",") != "completed,updated,created" && strings.Join(actions, ",") != "updated,completed,created" {
		t.Fatalf("actions %v", actions)
	}
	items, _ = u.do(t, "GET", "/api/v1/activity?action=created&entity_type=task", nil).list(t)
	if len(items) != 1 {
		t.Fatalf("%v", items)
	}
	future := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	if items, _ = u.do(t, "GET", "/api/v1/activity?from="+future, nil).list(t); len(items) != 0 {
		t.Fatal("from filter")
	}
	if items, _ = u.do(t, "GET", "/api/v1/activity?to="+future, nil).list(t); len(items) != 3 {
		t.Fatal("to filter")
	}
	if items, _ = e.user(t, "free").do(t, "GET", "/api/v1/activity", nil).list(t); len(items) != 0 {
		t.Fatal("another user's activity")
	}
	wantError(t, u.do(t, "GET", "/api/v1/activity?source=robot&from=yesterday", nil), 400, "VALIDATION_ERROR", "source", "from")
}

// sseLines opens the notification stream at baseURL and returns its lines.
func sseLines(t *testing.T, baseURL, token string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+"/api/v1/notifications/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("stream status %d", res.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer res.Body.Close()
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

func waitLine(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream closed")
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line", prefix)
		}
	}
}

// TestNotificationStreamAcrossReplicas: two replicas share the database and NATS; clients
// of both get a notification whichever replica consumed the event that made it, so at
// least one of them got it across replicas (fan-out over NATS, not process memory).
func TestNotificationStreamAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := setup(t)
	second := e.start(t)
	u := e.user(t, "pro")
	a := sseLines(t, e.URL, u.Token)
	b := sseLines(t, second, u.Token)
	waitLine(t, a, ": heartbeat")
	waitLine(t, b, ": heartbeat")
	e.publish(t, billingevents.TypeSubscriptionExpired, u.ID, billingevents.Subscription{UserID: u.ID, Tier: "free", Status: "expired", Seq: 2})
	la, lb := waitLine(t, a, "data: "), waitLine(t, b, "data: ")
	if la != lb || !strings.Contains(la, "Subscription ended") {
		t.Fatalf("replicas disagree:\n%s\n%s", la, lb)
	}
}
