package store

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/pg"
)

// hooked stands for pg.InTx's transaction: a pgx.Tx with AfterCommit.
type hooked struct {
	pgx.Tx
	registered int
}

func (h *hooked) AfterCommit(func()) { h.registered++ }

// The reminder batch's wrapper must hand out the hooks of the transaction it wraps, or
// every reminder event would fall back to pg_notify inside the firing transaction.
func TestQueuedTxKeepsTheCommitHooks(t *testing.T) {
	t.Parallel()
	tx := &hooked{}
	h, ok := pg.HooksOf(&queuedTx{Tx: tx})
	if !ok {
		t.Fatal("queuedTx hides the commit hooks of its transaction")
	}
	h.AfterCommit(func() {})
	if tx.registered != 1 {
		t.Fatalf("%d hooks reached the transaction underneath, want 1", tx.registered)
	}
}
