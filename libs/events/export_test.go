package events

// SetAfterPublish installs a hook that runs after a pass's acks and before its mark; an
// error aborts the pass, as a crash between publish and mark would.
func SetAfterPublish(r *Relay, f func(acked []string) error) { r.afterPublish = f }
