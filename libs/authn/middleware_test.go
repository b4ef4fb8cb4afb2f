package authn_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/authn/authntest"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
)

func TestMiddleware(t *testing.T) {
	t.Parallel()
	iss := authntest.NewIssuer(t)
	userID := uuid.NewString()
	handler := httpx.RequestID(logging.Discard())(authn.Middleware(iss.Verifier())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := authn.FromContext(r.Context())
		if !ok {
			t.Error("no claims in the context")
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"user_id": c.UserID, "tier": c.Tier})
	})))
	expired := iss.TokenWith(t, authn.Claims{UserID: userID, IssuedAt: time.Now().Add(-time.Hour)}, authn.AccessTokenTTL)

	cases := []struct {
		name       string
		header     string
		wantStatus int
		wantCode   apperr.Code
	}{
		{"missing", "", http.StatusUnauthorized, apperr.Unauthorized},
		{"other scheme", "Basic dXNlcjpwYXNz", http.StatusUnauthorized, apperr.Unauthorized},
		{"bearer without a token", "Bearer ", http.StatusUnauthorized, apperr.Unauthorized},
		{"bare token", iss.Token(t, userID, authn.TierPro), http.StatusUnauthorized, apperr.Unauthorized},
		{"invalid token", "Bearer abc.def.ghi", http.StatusUnauthorized, apperr.InvalidToken},
		{"expired token", "Bearer " + expired, http.StatusUnauthorized, apperr.TokenExpired},
		{"valid", "Bearer " + iss.Token(t, userID, authn.TierPro), http.StatusOK, ""},
		{"scheme in lower case", "bearer " + iss.Token(t, userID, authn.TierPro), http.StatusOK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/api/v1/tasks", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, r)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantCode == "" {
				var got map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if got["user_id"] != userID || got["tier"] != authn.TierPro {
					t.Fatalf("claims seen by the handler: %v", got)
				}
				return
			}
			var body httpx.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			if body.Error.Code != tc.wantCode || body.Error.RequestID == "" || body.Error.RequestID != w.Header().Get("X-Request-ID") {
				t.Fatalf("envelope %+v", body.Error)
			}
			if w.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate")
			}
			if tc.wantCode == apperr.TokenExpired && (len(body.Error.Details) != 1 || body.Error.Details[0].Field != "refresh_required") {
				t.Fatalf("details %v", body.Error.Details)
			}
		})
	}
}
