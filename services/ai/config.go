package main

import (
	"net/url"
	"time"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/svc"
)

// ServiceName is the service's name and its Postgres schema.
const ServiceName = "ai"

// DefaultHTTPAddr is where the ai service listens unless HTTP_ADDR says otherwise.
const DefaultHTTPAddr = "127.0.0.1:8083"

// Config is everything the ai service reads from the environment.
type Config struct {
	// Base: HTTP_ADDR (default 127.0.0.1:8083), LOG_LEVEL, DATABASE_URL, NATS_URL, … (svc.ReadBase).
	Base svc.Base

	// OpenAIKey is OPENAI_API_KEY. Empty: the AI endpoints answer 503 AI_SERVICE_UNAVAILABLE
	// naming the variable; nothing pretends to be a model.
	OpenAIKey string
	// OpenAIBaseURL is OPENAI_BASE_URL (default https://api.openai.com/v1); tests point it
	// at a local fake.
	OpenAIBaseURL string
	// OpenAIModel is OPENAI_MODEL (default gpt-4o-mini).
	OpenAIModel string

	// DeepgramKey is DEEPGRAM_API_KEY. Empty: transcription answers 503
	// TRANSCRIPTION_SERVICE_UNAVAILABLE naming the variable.
	DeepgramKey string
	// DeepgramBaseURL is DEEPGRAM_BASE_URL (default https://api.deepgram.com), scheme and
	// host only.
	DeepgramBaseURL string
	// DeepgramModel is DEEPGRAM_MODEL (default nova-2).
	DeepgramModel string

	// ProviderTimeout is AI_PROVIDER_TIMEOUT (default 30s): the deadline of one provider call.
	ProviderTimeout time.Duration

	// JWKSURL, Issuer, Audience verify access tokens: JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE.
	JWKSURL  string
	Issuer   string
	Audience string
}

// Default provider settings.
const (
	DefaultOpenAIBaseURL   = "https://api.openai.com/v1"
	DefaultOpenAIModel     = "gpt-4o-mini"
	DefaultDeepgramBaseURL = "https://api.deepgram.com"
	DefaultDeepgramModel   = "nova-2"
	DefaultProviderTimeout = 30 * time.Second
)

// ReadConfig reads and validates the configuration.
func ReadConfig(getenv config.Getenv) (Config, error) {
	r := config.NewReader(getenv)
	c := Config{
		Base:            svc.ReadBase(r, ServiceName, DefaultHTTPAddr),
		OpenAIKey:       r.String("OPENAI_API_KEY", ""),
		OpenAIBaseURL:   r.String("OPENAI_BASE_URL", DefaultOpenAIBaseURL),
		OpenAIModel:     r.String("OPENAI_MODEL", DefaultOpenAIModel),
		DeepgramKey:     r.String("DEEPGRAM_API_KEY", ""),
		DeepgramBaseURL: r.String("DEEPGRAM_BASE_URL", DefaultDeepgramBaseURL),
		DeepgramModel:   r.String("DEEPGRAM_MODEL", DefaultDeepgramModel),
		ProviderTimeout: r.Duration("AI_PROVIDER_TIMEOUT", DefaultProviderTimeout),
		JWKSURL:         r.String("JWKS_URL", authn.DefaultJWKSURL),
		Issuer:          r.String("AUTH_ISSUER", authn.DefaultIssuer),
		Audience:        r.String("AUTH_AUDIENCE", authn.DefaultAudience),
	}
	r.Check(httpURL(c.OpenAIBaseURL), "OPENAI_BASE_URL: %q is not an http(s) URL", c.OpenAIBaseURL)
	r.Check(httpURL(c.DeepgramBaseURL), "DEEPGRAM_BASE_URL: %q is not an http(s) URL", c.DeepgramBaseURL)
	r.Check(httpURL(c.JWKSURL), "JWKS_URL: %q is not an http(s) URL", c.JWKSURL)
	r.Check(c.ProviderTimeout > 0, "AI_PROVIDER_TIMEOUT must be positive")
	return c, r.Err()
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
