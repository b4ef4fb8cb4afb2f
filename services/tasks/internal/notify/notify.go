// Package notify fans new in-app notifications out to the SSE clients connected to any
// replica: after a notification commits, its writer publishes it on core NATS
// notify.<user_id>; every replica holds one wildcard subscription and hands each message
// to that user's connected streams. Messages missed while disconnected come back from the
// table through Last-Event-ID, so a lost core-NATS message only delays, never loses.
package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/svc"

	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// SubjectPrefix + user id is the subject of a user's notifications.
const SubjectPrefix = "notify."

// clientBuffer is how many notifications a slow stream may lag before it is closed (the
// client reconnects with Last-Event-ID and replays from the table).
const clientBuffer = 64

// Hub is the per-replica fan-out.
type Hub struct {
	nc     *nats.Conn
	logger *slog.Logger
	sub    *nats.Subscription

	mu      sync.Mutex
	clients map[string]map[chan wire.Notification]struct{}
}

// New subscribes to every user's notifications on nc.
func New(nc *nats.Conn, logger *slog.Logger) (*Hub, error) {
	h := &Hub{nc: nc, logger: logger, clients: map[string]map[chan wire.Notification]struct{}{}}
	sub, err := nc.Subscribe(SubjectPrefix+"*", h.dispatch)
	if err != nil {
		return nil, err
	}
	h.sub = sub
	return h, nc.Flush()
}

// Worker holds the subscription until the service stops.
func (h *Hub) Worker() svc.Worker {
	return svc.Worker{Name: "notify-hub", Run: func(ctx context.Context) error {
		<-ctx.Done()
		err := h.sub.Unsubscribe()
		h.mu.Lock()
		for _, cs := range h.clients {
			for c := range cs {
				close(c)
			}
		}
		h.clients = map[string]map[chan wire.Notification]struct{}{}
		h.mu.Unlock()
		return err
	}}
}

// Publish announces committed notifications. A failure is logged: the row is in the table
// and the client gets it on its next reconnect.
func (h *Hub) Publish(ns ...task.Notification) {
	for _, n := range ns {
		b, err := json.Marshal(wire.FromNotification(n))
		if err == nil {
			err = h.nc.Publish(SubjectPrefix+n.UserID, b)
		}
		if err != nil {
			h.logger.Warn("notify: publish failed", "user_id", n.UserID, "notification_id", n.ID, "err", err)
		}
	}
}

func (h *Hub) dispatch(msg *nats.Msg) {
	userID := strings.TrimPrefix(msg.Subject, SubjectPrefix)
	var n wire.Notification
	if err := json.Unmarshal(msg.Data, &n); err != nil {
		h.logger.Warn("notify: bad message", "subject", msg.Subject, "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients[userID] {
		select {
		case c <- n:
		default: // too slow: close it; the client replays from the table
			delete(h.clients[userID], c)
			close(c)
		}
	}
}

// Subscribe registers a stream of userID's notifications. The channel closes when the
// stream falls behind or the service stops; cancel releases it.
func (h *Hub) Subscribe(userID string) (<-chan wire.Notification, func()) {
	c := make(chan wire.Notification, clientBuffer)
	h.mu.Lock()
	if h.clients[userID] == nil {
		h.clients[userID] = map[chan wire.Notification]struct{}{}
	}
	h.clients[userID][c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.clients[userID][c]; ok {
			delete(h.clients[userID], c)
			close(c)
		}
		if len(h.clients[userID]) == 0 {
			delete(h.clients, userID)
		}
	}
}
