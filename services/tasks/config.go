package main

import (
	"time"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/svc"
)

// name is the service's name and its Postgres schema.
const name = "tasks"

// Config is everything the tasks service reads from the environment.
type Config struct {
	// Base: HTTP_ADDR (default 127.0.0.1:8082), LOG_LEVEL, DATABASE_URL, NATS_URL, … (libs/svc).
	Base svc.Base
	// JWKSURL is JWKS_URL, where the auth service publishes its keys
	// (default http://127.0.0.1:8081/.well-known/jwks.json).
	JWKSURL string
	// AuthIssuer and AuthAudience are AUTH_ISSUER and AUTH_AUDIENCE (defaults
	// "perpetua-auth" and "perpetua-api"): what every access token must carry.
	AuthIssuer   string
	AuthAudience string
	// SSEHeartbeat is SSE_HEARTBEAT (default 15s), the comment interval of idle streams.
	SSEHeartbeat time.Duration
	// JobTimeout is JOB_TIMEOUT (default 1m), the longest one run of a background job
	// may take.
	JobTimeout time.Duration
	// JobRescueAfter is JOB_RESCUE_AFTER (default 2m, more than JobTimeout): a job left
	// running by a killed process (a reminder being fired, say) is retried after this.
	JobRescueAfter time.Duration
}

func readConfig(getenv func(string) string) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Base:           svc.ReadBase(r, name, "127.0.0.1:8082"),
		JWKSURL:        r.String("JWKS_URL", authn.DefaultJWKSURL),
		AuthIssuer:     r.String("AUTH_ISSUER", authn.DefaultIssuer),
		AuthAudience:   r.String("AUTH_AUDIENCE", authn.DefaultAudience),
		SSEHeartbeat:   r.Duration("SSE_HEARTBEAT", 15*time.Second),
		JobTimeout:     r.Duration("JOB_TIMEOUT", time.Minute),
		JobRescueAfter: r.Duration("JOB_RESCUE_AFTER", 2*time.Minute),
	}
	r.Check(c.SSEHeartbeat >= 100*time.Millisecond, "SSE_HEARTBEAT must be at least 100ms")
	r.Check(c.JobTimeout >= time.Second, "JOB_TIMEOUT must be at least 1s")
	r.Check(c.JobRescueAfter > c.JobTimeout, "JOB_RESCUE_AFTER must be longer than JOB_TIMEOUT")
	return c, r.Err()
}
