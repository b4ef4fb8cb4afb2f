package store

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/pgtest"
)

// TestScannersMatchPlainScan holds the reusing scanners' tricks (repeatedID, enumText) to
// what a plain Scan into strings reads, over rows whose values repeat and change, in
// both of pgx's result formats.
func TestScannersMatchPlainScan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, "tasks_store_scan", "tasks", func(context.Context, string) error { return nil })
	a, b := uuid.NewString(), uuid.NewString()
	ids := []string{a, a, b, b, a, uuid.NewString()}
	enums := []string{"low", "low", "medium", "odd value", "", "push"}
	const q = `SELECT u, e FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS x(u, e, n) ORDER BY n`
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			rows, err := pool.Query(context.Background(), q, mode, ids, enums)
			if err != nil {
				t.Fatal(err)
			}
			var id string
			var e enumText
			got, err := collect(rows, 0, func(r pgx.Row) ([2]string, error) {
				err := r.Scan(repeatedID{&id}, &e)
				return [2]string{id, string(e)}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ids) {
				t.Fatalf("%d rows, want %d", len(got), len(ids))
			}
			for i := range ids {
				if got[i] != [2]string{ids[i], enums[i]} {
					t.Errorf("row %d: %q, want %q %q", i, got[i], ids[i], enums[i])
				}
			}
		})
	}
}
