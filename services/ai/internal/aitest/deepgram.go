package aitest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Transcript scripts one answer of the fake Deepgram.
type Transcript struct {
	Status     int // other than 0/200: Deepgram's error body
	Block      bool
	Text       string
	Language   string
	Confidence float64
}

// DeepgramRequest is what the fake saw of one /v1/listen request.
type DeepgramRequest struct {
	URL           string
	Query         string
	Authorization string
}

// Deepgram is a fake of Deepgram's pre-recorded /v1/listen API (audio by URL).
type Deepgram struct {
	URL string // base URL (scheme and host)

	mu       sync.Mutex
	reply    Transcript
	requests []DeepgramRequest
	calls    atomic.Int32
}

// NewDeepgram starts the fake; it hears "buy milk" until told otherwise.
func NewDeepgram(t testing.TB) *Deepgram {
	t.Helper()
	f := &Deepgram{reply: Transcript{Text: "buy milk", Language: "en", Confidence: 0.97}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/listen", f.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Always answers every request with r.
func (f *Deepgram) Always(r Transcript) {
	f.mu.Lock()
	f.reply = r
	f.mu.Unlock()
}

// Calls is how many requests reached the fake.
func (f *Deepgram) Calls() int { return int(f.calls.Load()) }

// Requests is what the fake saw.
func (f *Deepgram) Requests() []DeepgramRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]DeepgramRequest(nil), f.requests...)
}

func (f *Deepgram) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var body struct {
		URL string `json:"url"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.URL == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"err_code": "Bad Request", "err_msg": "Invalid JSON submitted.", "request_id": "fake"})
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, DeepgramRequest{URL: body.URL, Query: r.URL.RawQuery, Authorization: r.Header.Get("Authorization")})
	reply := f.reply
	f.mu.Unlock()
	if reply.Block {
		<-r.Context().Done()
		return
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		writeJSON(w, reply.Status, map[string]any{"err_code": "INTERNAL_SERVER_ERROR", "err_msg": http.StatusText(reply.Status), "request_id": "fake"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"metadata": map[string]any{
			"transaction_key": "deprecated",
			"request_id":      "5d9e2b5c-0000-4000-8000-000000000001",
			"sha256":          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			"created":         "2026-11-26T12:00:00.000Z",
			"duration":        25.93,
			"channels":        1,
			"models":          []string{"30089e05-99d1-4376-b32e-c263170674af"},
			"model_info": map[string]any{
				"30089e05-99d1-4376-b32e-c263170674af": map[string]any{"name": "2-general-nova", "version": "2024-01-09.29447", "arch": "nova-2"},
			},
		},
		"results": map[string]any{
			"channels": []map[string]any{{
				"alternatives": []map[string]any{{
					"transcript": reply.Text,
					"confidence": reply.Confidence,
					"words": []map[string]any{
						{"word": "buy", "start": 0.08, "end": 0.32, "confidence": 0.99, "punctuated_word": "Buy"},
					},
				}},
				"detected_language":   reply.Language,
				"language_confidence": 0.99,
			}},
		},
	})
}
