package fakes

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// OpenAI is a fake of the Chat Completions API (POST /v1/chat/completions): a plain answer,
// a streamed answer in `data:` chunks ending with `data: [DONE]`, and a structured answer
// for a json_schema response format. Failing makes it answer 500 like an outage.
type OpenAI struct {
	BaseURL string // give it to OPENAI_BASE_URL
	Calls   atomic.Int64
	failing atomic.Bool
}

// NewOpenAI starts the fake for the test.
func NewOpenAI(t testing.TB) *OpenAI {
	t.Helper()
	f := &OpenAI{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.BaseURL = srv.URL + "/v1"
	return f
}

// SetFailing makes every call answer 500 (true) or succeed again (false).
func (f *OpenAI) SetFailing(v bool) { f.failing.Store(v) }

func (f *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	f.Calls.Add(1)
	if f.failing.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`))
		return
	}
	var req struct {
		Model          string `json:"model"`
		Stream         bool   `json:"stream"`
		ResponseFormat *struct {
			Type string `json:"type"`
		} `json:"response_format"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	content := "Start with the outline, then write one section a day."
	if req.ResponseFormat != nil && req.ResponseFormat.Type == "json_schema" {
		content = `{"subtasks":["Draft the outline","Write the first section","Review"," Review ","Publish"]}`
	}
	created := time.Now().Unix()
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-e2e", "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": content}}},
			"usage": map[string]int{"prompt_tokens": 42, "completion_tokens": 12, "total_tokens": 54},
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	for _, piece := range strings.SplitAfter(content, " ") {
		chunk := map[string]any{"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []map[string]any{{"index": 0, "delta": map[string]any{"content": piece}, "finish_reason": nil}}}
		b, _ := json.Marshal(chunk)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	end := map[string]any{"id": "chatcmpl-e2e", "object": "chat.completion.chunk", "created": created, "model": req.Model,
		"choices": []map[string]any{{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}}
	b, _ := json.Marshal(end)
	fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", b)
}

// Deepgram is a fake of Deepgram's pre-recorded API (POST /v1/listen with {"url"}).
type Deepgram struct {
	BaseURL string // give it to DEEPGRAM_BASE_URL
}

// NewDeepgram starts the fake for the test; it always hears "buy milk".
func NewDeepgram(t testing.TB) *Deepgram {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/listen", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"metadata": map[string]any{"request_id": "dg-e2e", "duration": 90.0, "channels": 1},
			"results": map[string]any{"channels": []map[string]any{{
				"detected_language": "en",
				"alternatives":      []map[string]any{{"transcript": "buy milk", "confidence": 0.97}},
			}}},
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &Deepgram{BaseURL: srv.URL}
}
