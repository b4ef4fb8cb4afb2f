package svc

import "runtime/debug"

// DefaultGCPercent is the collector's target when GOGC is not set. A service's live heap is
// a few MB, so Go's default (100) collects every few MB of garbage: under load that was a
// large part of the CPU on two cores (make bench: GET task through the gateway 3.2k/s at
// 100, 5.4k/s at 400). 400 trades tens of MB under load for a quarter of the collections;
// the idle footprint does not change. GOMEMLIMIT still bounds the heap (the k8s
// manifests set it from the container's memory limit), so a burst near the limit makes the
// collector work harder instead of the pod being killed.
const DefaultGCPercent = 400

// tuneGC applies DefaultGCPercent unless GOGC says otherwise.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
