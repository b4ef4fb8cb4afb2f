package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/e2e/stack"
	"github.com/perpetua-flow/backend/libs/events/catalog"
	"github.com/perpetua-flow/backend/libs/natsx"
)

// checkEvents reads every event the suite made the services emit and validates each
// against the AsyncAPI catalogue, so the document cannot drift from what is published;
// and it insists that no event was dead-lettered.
func checkEvents(t *testing.T, s *stack.Stack) {
	t.Helper()
	nc, err := nats.Connect(s.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts := map[string]int{}
	for _, st := range natsx.AllStreams {
		stream, err := js.Stream(ctx, st.Name)
		if err != nil {
			t.Fatalf("stream %s: %v", st.Name, err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Name == natsx.StreamDeadLetter.Name {
			if info.State.Msgs != 0 {
				t.Errorf("%d events were dead-lettered during the suite", info.State.Msgs)
			}
			continue
		}
		if info.State.Msgs == 0 {
			continue
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for read := uint64(0); read < info.State.Msgs; {
			batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for msg := range batch.Messages() {
				n++
				counts[msg.Subject()]++
				if err := catalog.Validate(msg.Data()); err != nil {
					t.Errorf("%s: %v\n%s", msg.Subject(), err, msg.Data())
				}
				if msg.Headers().Get(jetstream.MsgIDHeader) == "" {
					t.Errorf("%s published without Nats-Msg-Id", msg.Subject())
				}
			}
			if n == 0 {
				t.Fatalf("stream %s: read %d of %d messages", st.Name, read, info.State.Msgs)
			}
			read += uint64(n)
		}
	}
	t.Logf("events validated against the catalogue: %v", counts)
}
