package checkout

import (
	"testing"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_1","type":"payment_captured"}`)
	secrets := []string{"old", "new"}
	tests := []struct {
		name string
		body []byte
		sig  string
		want bool
	}{
		{"old secret", body, Sign("old", body), true},
		{"new secret", body, Sign("new", body), true},
		{"other secret", body, Sign("other", body), false},
		{"missing", body, "", false},
		{"not hex", body, "xyz", false},
		{"short", body, Sign("new", body)[:10], false},
		{"upper-case hex is the same MAC", body, upper(Sign("new", body)), true},
		{"body changed by one byte", append([]byte{}, append(body[:len(body)-1:len(body)-1], ' ')...), Sign("new", body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Verify(secrets, tt.body, tt.sig); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
	if Verify(nil, body, Sign("", body)) {
		t.Fatal("no secrets must refuse everything, even an empty-key MAC")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestParseEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		amount int
		ok     bool
	}{
		{"numeric amount", `{"id":"e","type":"payment_captured","data":{"metadata":{"user_id":"u","kind":"credits","amount":40}}}`, 40, true},
		{"string amount", `{"id":"e","type":"payment_captured","data":{"metadata":{"user_id":"u","kind":"credits","amount":"40"}}}`, 40, true},
		{"no metadata", `{"id":"e","type":"dispute_opened","data":{}}`, 0, true},
		{"bad amount", `{"id":"e","type":"payment_captured","data":{"metadata":{"amount":"forty"}}}`, 0, false},
		{"no id", `{"type":"payment_captured"}`, 0, false},
		{"not json", `{`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := ParseEvent([]byte(tt.body))
			if (err == nil) != tt.ok || ev.Data.Metadata.Amount != tt.amount {
				t.Fatalf("ParseEvent = %+v, %v", ev, err)
			}
		})
	}
}
