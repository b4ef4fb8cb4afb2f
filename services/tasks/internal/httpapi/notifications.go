package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// replayLimit bounds what one reconnect replays; a client further behind reads the list.
const replayLimit = 100

func (a *API) listNotifications(w http.ResponseWriter, r *http.Request) {
	hp, sp, err := page(r)
	q := newQuery(r)
	read := q.boolean("read")
	if err == nil {
		err = q.v.Err()
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ns, total, err := a.store.ListNotifications(r.Context(), actor(r).UserID, read, sp)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]wire.Notification, 0, len(ns))
	for _, n := range ns {
		out = append(out, wire.FromNotification(n))
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, hp, total))
}

func (a *API) readNotification(w http.ResponseWriter, r *http.Request) {
	n, err := a.store.MarkNotificationRead(r.Context(), actor(r).UserID, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromNotification(n))
}

func (a *API) readAllNotifications(w http.ResponseWriter, r *http.Request) {
	n, err := a.store.MarkAllNotificationsRead(r.Context(), actor(r).UserID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, map[string]int64{"updated": n})
}

func (a *API) deleteNotification(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := a.store.DeleteNotification(r.Context(), actor(r).UserID, id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, map[string]string{"deleted_id": id})
}

// streamNotifications is the SSE stream of the user's new notifications. It subscribes
// to the hub before replaying from Last-Event-ID, so nothing falls between the two, and
// sends each notification once (by seq).
func (a *API) streamNotifications(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	userID := actor(r).UserID
	var last int64
	replay := false
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		replay = true
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			httpx.WriteError(w, r, apperr.Invalid(apperr.Field("Last-Event-ID", "must be the id of an event of this stream")))
			return
		}
		last = n
	}
	flusher, ok := w.(http.Flusher)
	if !ok || a.hub == nil {
		httpx.WriteError(w, r, apperr.New(apperr.ServiceUnavailable, "streaming is not available"))
		return
	}
	live, cancel := a.hub.Subscribe(userID)
	defer cancel()
	// The server's ReadTimeout would otherwise end the stream: its deadline stays on the
	// connection, and the expired background read cancels the request's context.
	if err := http.NewResponseController(w).SetReadDeadline(time.Time{}); err != nil {
		httpx.LoggerFrom(ctx).DebugContext(ctx, "sse: cannot clear the read deadline", "err", err)
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: 3000\n\n"); err != nil {
		return
	}
	if replay {
		missed, err := a.store.NotificationsAfter(ctx, userID, last, replayLimit)
		if err != nil {
			httpx.LoggerFrom(ctx).WarnContext(ctx, "sse replay failed", "err", err)
			return
		}
		for _, n := range missed {
			if !writeEvent(w, wire.FromNotification(n)) {
				return
			}
			last = n.Seq
		}
	}
	flusher.Flush()
	beat := time.NewTicker(a.heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-live:
			if !ok {
				return // fell behind or shutting down: the client reconnects and replays
			}
			if n.Seq <= last {
				continue
			}
			if !writeEvent(w, n) {
				return
			}
			last = n.Seq
			flusher.Flush()
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func writeEvent(w http.ResponseWriter, n wire.Notification) bool {
	b, err := json.Marshal(n)
	if err != nil {
		return false
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: notification\ndata: %s\n\n", n.Seq, b)
	return err == nil
}
