package authn

import (
	"net/http"
	"strings"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"
)

// Middleware requires a valid access token in "Authorization: Bearer <token>" (the
// scheme in any case, RFC 7235) and puts its claims in the request context, plus the user
// id on the request's logger. A missing header or another scheme is 401 UNAUTHORIZED; a
// bad token is whatever Verify says. Both answers carry WWW-Authenticate (RFC 6750).
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := BearerToken(r)
			if !ok {
				e := apperr.New(apperr.Unauthorized, "an access token is required")
				e.Headers = map[string]string{"WWW-Authenticate": `Bearer realm="perpetua"`}
				httpx.WriteError(w, r, e)
				return
			}
			claims, err := v.Verify(r.Context(), raw)
			if err != nil {
				if e, ok := apperr.As(err); ok && e.Code.Status() == http.StatusUnauthorized {
					e.Headers = map[string]string{"WWW-Authenticate": `Bearer realm="perpetua", error="invalid_token"`}
				}
				httpx.WriteError(w, r, err)
				return
			}
			ctx := WithClaims(r.Context(), claims)
			ctx = httpx.WithLogAttrs(ctx, "user_id", claims.UserID)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// BearerToken is the token of an "Authorization: Bearer <token>" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
