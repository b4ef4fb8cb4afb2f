package httpx

import (
	"bytes"
	"encoding/json"
)

// Optional distinguishes a JSON field that was absent, present as null, or present with a
// value, which PATCH semantics need ("null clears").
type Optional[T any] struct {
	Set   bool // the field was present
	Null  bool // it was present and null
	Value T
}

// UnmarshalJSON is called only when the field is present.
func (o *Optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		var zero T
		o.Value = zero
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// Has reports a present, non-null value.
func (o Optional[T]) Has() bool { return o.Set && !o.Null }
