package httpx_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/perpetua-flow/backend/libs/httpx"
)

// TestWithLogAttrsLogsLikeWith holds the lazily made request logger to the one a chain
// of With calls makes: same attributes, same order, for every way a context gets them.
func TestWithLogAttrsLogsLikeWith(t *testing.T) {
	t.Parallel()
	line := func(l *slog.Logger, buf *bytes.Buffer) string {
		buf.Reset()
		l.Info("hello", "k", 1)
		return buf.String()
	}
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})).With("service", "tasks")
	want := line(base.With("request_id", "r1").With("trace_id", "t1", "span_id", "s1").With("user_id", "u1"), &buf)

	ctx := httpx.WithLogger(context.Background(), base)
	ctx = httpx.WithLogAttrs(ctx, "request_id", "r1")
	mid := httpx.WithLogAttrs(ctx, "trace_id", "t1", "span_id", "s1")
	// A logger already made on the way does not change what comes after it.
	if got, w := line(httpx.LoggerFrom(mid), &buf), line(base.With("request_id", "r1", "trace_id", "t1", "span_id", "s1"), &buf); got != w {
		t.Errorf("midway: %s want %s", got, w)
	}
	end := httpx.WithLogAttrs(mid, "user_id", "u1")
	if got := line(httpx.LoggerFrom(end), &buf); got != want {
		t.Errorf("lazy: %s want %s", got, want)
	}
	if got := line(httpx.LoggerFrom(ctx), &buf); got != line(base.With("request_id", "r1"), &buf) {
		t.Errorf("outer context gained inner attributes: %s", got)
	}
	// An eager WithLogger after lazy attributes keeps them.
	eager := httpx.WithLogger(end, httpx.LoggerFrom(end).With("extra", true))
	if got, w := line(httpx.LoggerFrom(eager), &buf), line(base.With("request_id", "r1", "trace_id", "t1", "span_id", "s1", "user_id", "u1", "extra", true), &buf); got != w {
		t.Errorf("eager after lazy: %s want %s", got, w)
	}
}
