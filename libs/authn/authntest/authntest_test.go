package authntest_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
)

func TestIssuerTokensVerify(t *testing.T) {
	t.Parallel()
	iss := authntest.NewIssuer(t)
	userID := uuid.NewString()
	c, err := iss.Verifier().Verify(t.Context(), iss.Token(t, userID, authn.TierPro))
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != userID || c.Tier != authn.TierPro || c.SessionID == "" || c.TokenID == "" || c.Email == "" {
		t.Fatalf("claims %+v", c)
	}
	if c.ExpiresAt.Sub(c.IssuedAt) != authn.AccessTokenTTL {
		t.Fatalf("ttl %s", c.ExpiresAt.Sub(c.IssuedAt))
	}
	// A second issuer shares the key but not the verifier's trust of its URL; both work.
	other := authntest.NewIssuer(t)
	if _, err := other.Verifier().Verify(t.Context(), other.Token(t, "", "")); err != nil {
		t.Fatal(err)
	}
}
