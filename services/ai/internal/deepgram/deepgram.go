// Package deepgram is the speech provider of the ai service: Deepgram's pre-recorded
// transcription of audio at a URL, through deepgram-go-sdk v3, pointed at
// DEEPGRAM_BASE_URL (the real API, or a local fake in tests).
package deepgram

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	listenapi "github.com/deepgram/deepgram-go-sdk/v3/pkg/api/listen/v1/rest"
	interfaces "github.com/deepgram/deepgram-go-sdk/v3/pkg/client/interfaces"
	"github.com/deepgram/deepgram-go-sdk/v3/pkg/client/listen"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
)

// DefaultModel is the Deepgram model asked for.
const DefaultModel = "nova-2"

// Config says how to reach Deepgram.
type Config struct {
	APIKey string
	// BaseURL is scheme://host[:port]. The SDK takes a host override (ClientOptions.Host)
	// and keeps only its scheme and host, always calling /v1/listen under it, so a path
	// prefix in the URL is refused here instead of being silently dropped.
	BaseURL string
	Model   string
}

// Client implements assistant.Transcriber.
type Client struct {
	api   *listenapi.Client
	model string
}

// New makes a client. Note: the SDK also reads DEEPGRAM_HOST, DEEPGRAM_API_VERSION and
// DEEPGRAM_ACCESS_TOKEN from the process environment when they are set; deployments of
// this service must not set them (DEEPGRAM_BASE_URL and DEEPGRAM_API_KEY are ours).
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("deepgram: API key is empty")
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	opts := &interfaces.ClientOptions{APIKey: cfg.APIKey}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("deepgram: base URL %q is not an http(s) URL", cfg.BaseURL)
		}
		if p := strings.Trim(u.Path, "/"); p != "" && p != "v1" {
			return nil, fmt.Errorf("deepgram: base URL %q: a path prefix is not supported", cfg.BaseURL)
		}
		opts.Host = u.Scheme + "://" + u.Host
	}
	rc := listen.NewREST(cfg.APIKey, opts)
	if rc == nil {
		return nil, errors.New("deepgram: the SDK refused the client options")
	}
	return &Client{api: listenapi.New(rc), model: cfg.Model}, nil
}

// Transcribe transcribes the audio at audioURL (Deepgram fetches it).
func (c *Client) Transcribe(ctx context.Context, audioURL string) (assistant.Transcript, error) {
	resp, err := c.api.FromURL(ctx, audioURL, &interfaces.PreRecordedTranscriptionOptions{
		Model:          c.model,
		SmartFormat:    true,
		Punctuate:      true,
		DetectLanguage: true,
	})
	if err != nil {
		return assistant.Transcript{Model: c.model}, fmt.Errorf("deepgram: transcribe: %w", err)
	}
	if resp == nil || resp.Results == nil || len(resp.Results.Channels) == 0 || len(resp.Results.Channels[0].Alternatives) == 0 {
		return assistant.Transcript{Model: c.model}, errors.New("deepgram: transcribe: no alternatives in the response")
	}
	ch := resp.Results.Channels[0]
	alt := ch.Alternatives[0]
	lang := ch.DetectedLanguage
	if lang == "" && len(alt.Languages) > 0 {
		lang = alt.Languages[0]
	}
	return assistant.Transcript{Text: alt.Transcript, Language: lang, Confidence: alt.Confidence, Model: c.model}, nil
}
