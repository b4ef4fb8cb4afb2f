package events

// SetAfterPublish installs a hook that runs after a pass's acks and before its mark; an
// error aborts the pass, as a crash between publish and mark would.
func SetAfterPublish(r *Relay, f func(acked []string) error) { r.afterPublish = f }

// SetLockBusy installs a hook that runs after each pass that found the relay lock held.
func SetLockBusy(r *Relay, f func()) { r.lockBusy = f }

// RelayLockKey is the advisory lock key of the relay of schema.
func RelayLockKey(schema string) int64 { return relayLockKey(schema) }
