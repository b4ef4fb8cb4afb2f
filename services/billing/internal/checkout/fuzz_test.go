package checkout

import (
	"bytes"
	"testing"
)

// FuzzWebhook: the signature check accepts exactly the bodies signed with a configured
// secret (any change to body or signature is refused), and parsing any body never panics.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1","amount":999,"currency":"EUR","metadata":{"user_id":"0190a1b2-0000-7000-8000-000000000001","kind":"subscription","amount":1}}}`), "whsec", byte(1))
	f.Add([]byte(`{"id":"evt_2","type":"subscription_renewed","data":{"subscription_id":"sub_1","current_period_end":"2026-12-01T00:00:00Z","metadata":{"user_id":"x"}}}`), "k", byte(0))
	f.Add([]byte(`{"metadata":{"amount":"12"}}`), "", byte(7))
	f.Add([]byte(`not json`), "secret", byte(255))
	f.Fuzz(func(t *testing.T, body []byte, secret string, flip byte) {
		_, _ = ParseEvent(body)
		if secret == "" {
			if Verify([]string{secret}, body, Sign(secret, body)) {
				t.Fatal("an empty secret must verify nothing")
			}
			return
		}
		sig := Sign(secret, body)
		if !Verify([]string{"other-" + secret, secret}, body, sig) {
			t.Fatal("a body signed with a configured secret must verify")
		}
		if len(body) > 0 {
			altered := bytes.Clone(body)
			altered[int(flip)%len(altered)] ^= 1
			if Verify([]string{secret}, altered, sig) {
				t.Fatal("a body changed in one bit must not verify")
			}
		}
		if Verify([]string{secret + "x"}, body, sig) {
			t.Fatal("another secret must not verify")
		}
	})
}
