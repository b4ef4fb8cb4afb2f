// Package natsembed runs a NATS server with JetStream inside the process: the local stack
// uses one with its store under .data/, and tests one per test on a random port.
package natsembed

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options of an embedded server.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // 0 or -1 picks a free port
	StoreDir string // JetStream store; required
}

// Start runs a JetStream server that syncs every write before acknowledging it
// (DESIGN-NOTES.md, "JetStream durability"), and waits until it accepts clients.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "perpetua-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		SyncAlways: true,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready (port taken?)", o.Host, o.Port)
	}
	return s, nil
}

// StartTest starts a server of the test's own (so stream names never meet another test's)
// and shuts it down at cleanup. It returns the client URL.
func StartTest(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	s, err := Start(Options{StoreDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}
