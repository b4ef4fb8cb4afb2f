package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/perpetua-flow/backend/libs/pgtest"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1/db", "NATS_URL": "nats://127.0.0.1:4222"}
	cfg, err := readConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Base.HTTPAddr != "127.0.0.1:8082" || cfg.AuthIssuer != "perpetua-auth" || cfg.AuthAudience != "perpetua-api" ||
		cfg.JWKSURL != "http://127.0.0.1:8081/.well-known/jwks.json" || cfg.Base.DB.Schema != "tasks" {
		t.Fatalf("defaults %+v", cfg)
	}
	_, err = readConfig(func(k string) string { return map[string]string{"SSE_HEARTBEAT": "1ms"}[k] })
	for _, want := range []string{"DATABASE_URL", "NATS_URL", "SSE_HEARTBEAT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v does not name %s", err, want)
		}
	}
}

// TestMigrateSubcommand: `tasks migrate` applies everything to an empty database, twice.
func TestMigrateSubcommand(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t, "tasks_empty", func(context.Context, string) error { return nil })
	env := map[string]string{"DATABASE_URL": url, "NATS_URL": "nats://unused"}
	for i := 0; i < 2; i++ {
		if err := Migrate(context.Background(), func(k string) string { return env[k] }, io.Discard); err != nil {
			t.Fatalf("migrate %d: %v", i, err)
		}
	}
}
