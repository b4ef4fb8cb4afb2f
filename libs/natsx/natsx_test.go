package natsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/natsembed"
	"github.com/perpetua-flow/backend/libs/natsx"
)

func TestEnsureStreamsIsIdempotentAndDedupesByMsgID(t *testing.T) {
	t.Parallel()
	url := natsembed.StartTest(t)
	cfg := natsx.Config{URL: url, Name: "test"}
	nc, err := natsx.Connect(cfg, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if err := natsx.EnsureStreams(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range natsx.AllStreams {
		info, err := js.Stream(ctx, s.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", s.Name, err)
		}
		if info.CachedInfo().Config.Duplicates != natsx.DuplicateWindow {
			t.Fatalf("stream %s duplicate window = %v", s.Name, info.CachedInfo().Config.Duplicates)
		}
	}
	// The same Nats-Msg-Id twice is stored once: the outbox relay relies on it.
	for range 2 {
		msg := nats.NewMsg("tasks.task.created")
		msg.Header.Set(jetstream.MsgIDHeader, "event-1")
		msg.Data = []byte(`{}`)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := js.Stream(ctx, "TASKS")
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("messages = %d, want 1 (duplicate dropped)", info.State.Msgs)
	}
	if err := natsx.Ping(ctx, nc); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestConnectRequiresURL(t *testing.T) {
	t.Parallel()
	if _, err := natsx.Connect(natsx.Config{}, logging.Discard()); err == nil {
		t.Fatal("want an error without NATS_URL")
	}
}
