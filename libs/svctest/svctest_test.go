package svctest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/perpetua-flow/backend/libs/svctest"
)

func TestStartServesUntilCleanup(t *testing.T) {
	t.Parallel()
	stopped := make(chan struct{})
	run := func(ctx context.Context, getenv func(string) string, _ io.Writer, ready func(string)) error {
		l, err := net.Listen("tcp", getenv("HTTP_ADDR"))
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, getenv("GREETING"))
		})}
		defer close(stopped)
		go func() { <-ctx.Done(); _ = srv.Close() }()
		ready(l.Addr().String())
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	t.Run("serves", func(t *testing.T) {
		url := svctest.Start(t, run, map[string]string{"GREETING": "hello"}, nil)
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "hello" {
			t.Fatalf("got %q", b)
		}
	})
	select {
	case <-stopped:
	default:
		t.Fatal("the service must be stopped when the test that started it ends")
	}
}
