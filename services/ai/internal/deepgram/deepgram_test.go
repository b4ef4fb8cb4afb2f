package deepgram_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/ai/internal/aitest"
	"github.com/perpetua-flow/backend/services/ai/internal/deepgram"
)

func setup(t *testing.T) (*aitest.Deepgram, *deepgram.Client) {
	t.Helper()
	fake := aitest.NewDeepgram(t)
	c, err := deepgram.New(deepgram.Config{APIKey: "dg-test", BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

func TestTranscribe(t *testing.T) {
	t.Parallel()
	fake, c := setup(t)
	fake.Always(aitest.Transcript{Text: "call the bank", Language: "en", Confidence: 0.91})
	tr, err := c.Transcribe(context.Background(), "https://files.example/voice.m4a")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Text != "call the bank" || tr.Language != "en" || tr.Confidence != 0.91 {
		t.Fatalf("transcript %+v", tr)
	}
	req := fake.Requests()[0]
	if req.URL != "https://files.example/voice.m4a" || !strings.EqualFold(req.Authorization, "Token dg-test") || !strings.Contains(req.Query, "model=nova-2") {
		t.Fatalf("request %+v", req)
	}
}

func TestTranscribeFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reply aitest.Transcript
	}{
		{"server error", aitest.Transcript{Status: 500}},
		{"rate limited", aitest.Transcript{Status: 429}},
		{"timeout", aitest.Transcript{Block: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, c := setup(t)
			fake.Always(tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := c.Transcribe(ctx, "https://files.example/voice.m4a"); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestBaseURLWithPathRefused(t *testing.T) {
	t.Parallel()
	if _, err := deepgram.New(deepgram.Config{APIKey: "k", BaseURL: "https://proxy.example/deepgram"}); err == nil {
		t.Fatal("a path prefix was accepted")
	}
}
