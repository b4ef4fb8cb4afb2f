package httpapi

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	signIns   *prometheus.CounterVec
	refreshes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_sign_ins_total", Help: "Sign-ins by method (google, dev) and outcome (new_user, existing_user, failed).",
		}, []string{"method", "outcome"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_refreshes_total", Help: "Refresh-token rotations by outcome (ok or the error code); REFRESH_TOKEN_REUSED counts detected reuse.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.signIns, m.refreshes)
	return m
}
