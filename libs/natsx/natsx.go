// Package natsx owns the connection to NATS and the JetStream streams of ARCHITECTURE.md:
// one stream per producing service, a dead-letter stream, and the subjects they carry.
package natsx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id. It must exceed the outbox
// relay's worst restart time (DESIGN-NOTES.md), so a re-published event is dropped.
const DuplicateWindow = 2 * time.Hour

// Stream is one JetStream stream of ARCHITECTURE.md.
type Stream struct {
	Name     string
	Subjects []string
}

// Streams: one per producing service, plus the dead letters of every consumer.
var (
	StreamAuth       = Stream{Name: "AUTH", Subjects: []string{"auth.>"}}
	StreamTasks      = Stream{Name: "TASKS", Subjects: []string{"tasks.>"}}
	StreamBilling    = Stream{Name: "BILLING", Subjects: []string{"billing.>"}}
	StreamAI         = Stream{Name: "AI", Subjects: []string{"ai.>"}}
	StreamDeadLetter = Stream{Name: "DEADLETTER", Subjects: []string{"deadletter.>"}}
	AllStreams       = []Stream{StreamAuth, StreamTasks, StreamBilling, StreamAI, StreamDeadLetter}
)

// Config says how to reach NATS.
type Config struct {
	URL  string // NATS_URL
	Name string // the client name, the service's
	// Replicas of each stream (3 in production, 1 locally). NATS_STREAM_REPLICAS.
	Replicas int
}

// Connect dials NATS with unlimited reconnects, logging disconnects and reconnects.
func Connect(cfg Config, logger *slog.Logger) (*nats.Conn, error) {
	if cfg.URL == "" {
		return nil, errors.New("natsx: NATS_URL is empty")
	}
	nc, err := nats.Connect(cfg.URL,
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5*time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("natsx: connect %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// EnsureStreams creates or updates the streams (idempotent; every service may call it at
// start). Storage is file, retention limits with a 7-day age, duplicates window above.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config, streams ...Stream) error {
	if len(streams) == 0 {
		streams = AllStreams
	}
	replicas := cfg.Replicas
	if replicas < 1 {
		replicas = 1
	}
	for _, s := range streams {
		sc := jetstream.StreamConfig{
			Name:       s.Name,
			Subjects:   s.Subjects,
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.LimitsPolicy,
			MaxAge:     7 * 24 * time.Hour,
			Duplicates: DuplicateWindow,
			Replicas:   replicas,
		}
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("natsx: stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Ping is a readiness check: the connection is up and the server answers.
func Ping(ctx context.Context, nc *nats.Conn) error {
	if !nc.IsConnected() {
		return errors.New("natsx: not connected")
	}
	deadline, ok := ctx.Deadline()
	timeout := 2 * time.Second
	if ok {
		timeout = time.Until(deadline)
	}
	return nc.FlushTimeout(timeout)
}
