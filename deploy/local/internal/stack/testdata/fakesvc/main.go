// Command fakesvc stands in for a service in the stack's tests: it serves the health
// routes on HTTP_ADDR, shows its environment at /env, and exits on SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, `{"status":"ok"}`) }
	mux.HandleFunc("/health/live", ok)
	mux.HandleFunc("/health/ready", ok)
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(os.Environ()) })
	srv := &http.Server{Addr: os.Getenv("HTTP_ADDR"), Handler: mux}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	fmt.Println("fake service listening on", os.Getenv("HTTP_ADDR"))
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("fake service stopped")
}
