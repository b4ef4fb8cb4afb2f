package httpx

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness probe (the database, NATS, an upstream).
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// ReadyTimeout bounds every readiness check.
const ReadyTimeout = 2 * time.Second

// Live answers {"status":"ok"} while the process serves.
func Live(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready runs every check; any failure answers 503 with the failing names.
func Ready(checks ...Check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		result := map[string]string{}
		ok := true
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				ok = false
				result[c.Name] = "failed"
				LoggerFrom(ctx).WarnContext(ctx, "readiness check failed", "check", c.Name, "err", err)
				continue
			}
			result[c.Name] = "ok"
		}
		status, code := "ok", http.StatusOK
		if !ok {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		WriteJSON(w, code, map[string]any{"status": status, "checks": result})
	}
}

// MountOps adds /health/live, /health/ready and /metrics to mux. They answer GET and HEAD;
// any other method is 405 METHOD_NOT_ALLOWED with an Allow header, whatever router mux is.
func MountOps(mux interface {
	Handle(pattern string, h http.Handler)
}, reg *prometheus.Registry, checks ...Check) {
	mux.Handle("/health/live", readOnly(http.HandlerFunc(Live)))
	mux.Handle("/health/ready", readOnly(Ready(checks...)))
	mux.Handle("/metrics", readOnly(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
}

// readOnly lets GET and HEAD through to h and refuses every other method.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			MethodNotAllowedHandler(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
