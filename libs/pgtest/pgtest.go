// Package pgtest gives each test a fresh PostgreSQL database cloned from a template that is
// migrated once per test binary. It uses DATABASE_URL when set (any server the tests may
// create databases on) and otherwise starts a private cluster for the package's tests,
// which Main stops when they finish.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perpetua-flow/backend/libs/pgcluster"
)

// Migrator prepares a template database reachable at databaseURL.
type Migrator func(ctx context.Context, databaseURL string) error

var (
	mu         sync.Mutex
	adminURL   string // a superuser URL to the server, database "postgres" or the given one
	cluster    *pgcluster.Cluster
	clusterDir string
	mainCalled bool
	templates  = map[string]*template{}
	runID      = randomHex(4)
)

type template struct {
	once sync.Once
	name string
	err  error
}

// Main runs the package's tests and stops the private cluster afterwards. Call it from
// TestMain in every package that uses this helper.
func Main(m *testing.M) {
	mu.Lock()
	mainCalled = true
	mu.Unlock()
	code := m.Run()
	mu.Lock()
	for _, t := range templates {
		if t.name != "" && adminURL != "" {
			dropDatabase(context.Background(), t.name)
		}
	}
	if cluster != nil {
		_ = cluster.Stop()
		_ = os.RemoveAll(clusterDir)
	}
	mu.Unlock()
	os.Exit(code)
}

// ServerURL is a superuser URL to the test server (starting the private cluster if needed)
// with the database name replaced by db.
func ServerURL(tb testing.TB, db string) string {
	tb.Helper()
	base, err := server()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return withDatabase(base, db)
}

func server() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if adminURL != "" {
		return adminURL, nil
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		adminURL = u
		return adminURL, nil
	}
	if !mainCalled {
		return "", fmt.Errorf("no DATABASE_URL and TestMain does not call pgtest.Main, so a private cluster could not be stopped")
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	cluster, clusterDir = c, dir
	adminURL = c.URL("postgres")
	return adminURL, nil
}

// NewDatabase creates a database for this test, cloned from the template named key (made
// once per test binary by migrate), and drops it when the test ends. It returns its URL.
func NewDatabase(tb testing.TB, key string, migrate Migrator) string {
	tb.Helper()
	base, err := server()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	mu.Lock()
	tpl, ok := templates[key]
	if !ok {
		tpl = &template{}
		templates[key] = tpl
	}
	mu.Unlock()
	tpl.once.Do(func() {
		name := "tpl_" + sanitize(key) + "_" + runID
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := exec(ctx, base, "CREATE DATABASE "+name); err != nil {
			tpl.err = err
			return
		}
		tpl.name = name
		if err := migrate(ctx, withDatabase(base, name)); err != nil {
			tpl.err = fmt.Errorf("migrate template: %w", err)
		}
	})
	if tpl.err != nil {
		tb.Fatalf("pgtest: template %s: %v", key, tpl.err)
	}
	name := "t_" + sanitize(key) + "_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createFromTemplate(ctx, base, name, tpl.name); err != nil {
		tb.Fatalf("pgtest: clone template: %v", err)
	}
	tb.Cleanup(func() { dropDatabase(context.Background(), name) })
	return withDatabase(base, name)
}

// NewPool is NewDatabase plus a pool on it whose search_path is schema, closed at cleanup.
func NewPool(tb testing.TB, key, schema string, migrate Migrator) *pgxpool.Pool {
	tb.Helper()
	u := NewDatabase(tb, key, migrate)
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// createFromTemplate retries while another session still holds the template (Postgres
// refuses to copy a database that has other connections).
func createFromTemplate(ctx context.Context, base, name, tpl string) error {
	var err error
	for {
		err = exec(ctx, base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tpl))
		if err == nil || !strings.Contains(err.Error(), "is being accessed by other users") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func dropDatabase(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = exec(ctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

func exec(ctx context.Context, u, sql string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func withDatabase(base, db string) string {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// keyword/value form: append dbname, later keys win.
		return base + " dbname=" + db
	}
	u.Path = "/" + db
	return u.String()
}

func sanitize(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 30 {
		out = out[:30]
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
