// Package aitest holds the ai service's test doubles of things it does not own: a fake
// OpenAI and a fake Deepgram that speak the providers' real wire formats over HTTP, and
// stand-ins for the billing and tasks services that implement their NATS request-reply
// contracts (libs/rpc/billingrpc, tasksrpc) faithfully. Only tests import it.
package aitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FakeModel is the model name the fake OpenAI reports.
const FakeModel = "gpt-4o-mini-2024-07-18"

// ToolCall is a function call the fake model makes.
type ToolCall struct {
	Name      string
	Arguments string
}

// Reply scripts one answer of the fake OpenAI.
type Reply struct {
	// Status other than 0/200 answers with OpenAI's error body (429, 500, …).
	Status int
	// Block holds the request until the client gives up (a timeout or a disconnect).
	Block bool
	// Text is the answer; streamed, it is sent as Chunks when those are empty.
	Text string
	// Chunks are the streamed content pieces, one SSE data line each.
	Chunks []string
	// HoldAfterFirst, for a stream, sends the first chunk and then waits until the
	// channel is closed (or the client leaves) before sending the rest.
	HoldAfterFirst <-chan struct{}
	// BreakAfterFirst, for a stream, cuts the connection after the first chunk (a
	// provider failing mid-answer).
	BreakAfterFirst bool
	// ToolCalls the model makes; streamed, each call's arguments are split across
	// several chunks, as OpenAI does.
	ToolCalls []ToolCall
}

// Request is what the fake saw of one chat completion request.
type Request struct {
	Model          string            `json:"model"`
	Stream         bool              `json:"stream"`
	Messages       []json.RawMessage `json:"messages"`
	Tools          []json.RawMessage `json:"tools"`
	ResponseFormat *struct {
		Type       string          `json:"type"`
		JSONSchema json.RawMessage `json:"json_schema"`
	} `json:"response_format"`
	Authorization string `json:"-"`
}

// OpenAI is a fake of the Chat Completions API.
type OpenAI struct {
	URL string // base URL, .../v1

	mu        sync.Mutex
	reply     func(Request) Reply
	requests  []Request
	calls     atomic.Int32
	cancelled atomic.Int32
}

// NewOpenAI starts the fake; it answers "Hello" until told otherwise.
func NewOpenAI(t testing.TB) *OpenAI {
	t.Helper()
	f := &OpenAI{reply: func(Request) Reply { return Reply{Text: "Hello"} }}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", f.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/v1"
	return f
}

// Respond sets the script for every following request.
func (f *OpenAI) Respond(fn func(Request) Reply) {
	f.mu.Lock()
	f.reply = fn
	f.mu.Unlock()
}

// Always answers every request with r.
func (f *OpenAI) Always(r Reply) { f.Respond(func(Request) Reply { return r }) }

// Calls is how many requests reached the fake.
func (f *OpenAI) Calls() int { return int(f.calls.Load()) }

// Cancelled is how many requests the client abandoned while the fake was answering.
func (f *OpenAI) Cancelled() int { return int(f.cancelled.Load()) }

// Requests is what the fake saw, in order.
func (f *OpenAI) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

func (f *OpenAI) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "could not parse the JSON body")
		return
	}
	req.Authorization = r.Header.Get("Authorization")
	f.mu.Lock()
	f.requests = append(f.requests, req)
	reply := f.reply(req)
	f.mu.Unlock()

	if reply.Block {
		<-r.Context().Done()
		f.cancelled.Add(1)
		return
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		typ := "server_error"
		if reply.Status == http.StatusTooManyRequests {
			typ = "requests"
		}
		writeOpenAIError(w, reply.Status, typ, http.StatusText(reply.Status))
		return
	}
	if req.Stream {
		f.stream(w, r, req, reply)
		return
	}
	msg := map[string]any{"role": "assistant", "content": reply.Text, "refusal": nil}
	finish := "stop"
	if len(reply.ToolCalls) > 0 {
		calls := []map[string]any{}
		for i, c := range reply.ToolCalls {
			calls = append(calls, map[string]any{
				"id": fmt.Sprintf("call_%d", i), "type": "function",
				"function": map[string]any{"name": c.Name, "arguments": c.Arguments},
			})
		}
		msg["tool_calls"] = calls
		finish = "tool_calls"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": FakeModel,
		"choices": []map[string]any{{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49},
	})
}

func (f *OpenAI) stream(w http.ResponseWriter, r *http.Request, req Request, reply Reply) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	created := time.Now().Unix()
	send := func(choices []map[string]any, usage map[string]any) bool {
		chunk := map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": FakeModel,
			"system_fingerprint": "fp_fake", "choices": choices,
		}
		if usage != nil {
			chunk["usage"] = usage
		}
		b, _ := json.Marshal(chunk)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		flusher.Flush()
		return r.Context().Err() == nil
	}
	delta := func(d map[string]any, finish any) []map[string]any {
		return []map[string]any{{"index": 0, "delta": d, "logprobs": nil, "finish_reason": finish}}
	}
	if !send(delta(map[string]any{"role": "assistant", "content": ""}, nil), nil) {
		f.cancelled.Add(1)
		return
	}
	chunks := reply.Chunks
	if len(chunks) == 0 && reply.Text != "" {
		chunks = []string{reply.Text}
	}
	for i, c := range chunks {
		if !send(delta(map[string]any{"content": c}, nil), nil) {
			f.cancelled.Add(1)
			return
		}
		if i == 0 && reply.BreakAfterFirst {
			panic(http.ErrAbortHandler)
		}
		if i == 0 && reply.HoldAfterFirst != nil {
			select {
			case <-reply.HoldAfterFirst:
			case <-r.Context().Done():
				f.cancelled.Add(1)
				return
			}
		}
	}
	for i, c := range reply.ToolCalls {
		head := map[string]any{"tool_calls": []map[string]any{{
			"index": i, "id": fmt.Sprintf("call_%d", i), "type": "function",
			"function": map[string]any{"name": c.Name, "arguments": ""},
		}}}
		if !send(delta(head, nil), nil) {
			f.cancelled.Add(1)
			return
		}
		for _, part := range splitN(c.Arguments, 3) {
			d := map[string]any{"tool_calls": []map[string]any{{"index": i, "function": map[string]any{"arguments": part}}}}
			if !send(delta(d, nil), nil) {
				f.cancelled.Add(1)
				return
			}
		}
	}
	finish := "stop"
	if len(reply.ToolCalls) > 0 {
		finish = "tool_calls"
	}
	send(delta(map[string]any{}, finish), nil)
	send([]map[string]any{}, map[string]any{"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49})
	fmt.Fprint(w, "data: [DONE]\n\n")
	flusher.Flush()
}

// splitN cuts s into n pieces of similar length (fewer when s is short).
func splitN(s string, n int) []string {
	if len(s) < n {
		return []string{s}
	}
	size := (len(s) + n - 1) / n
	var out []string
	for len(s) > size {
		out = append(out, s[:size])
		s = s[size:]
	}
	return append(out, s)
}

func writeOpenAIError(w http.ResponseWriter, status int, typ, msg string) {
	code := any(nil)
	if status == http.StatusTooManyRequests {
		code = "rate_limit_exceeded"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// JSONArgs marshals v as tool-call arguments.
func JSONArgs(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// HasJSONSchema reports whether the request asked for a json_schema response format.
func (r Request) HasJSONSchema() bool {
	return r.ResponseFormat != nil && r.ResponseFormat.Type == "json_schema" && len(r.ResponseFormat.JSONSchema) > 0
}

// SystemPrompt is the first message's content.
func (r Request) SystemPrompt() string {
	if len(r.Messages) == 0 {
		return ""
	}
	var m struct {
		Content string `json:"content"`
	}
	_ = json.Unmarshal(r.Messages[0], &m)
	return m.Content
}

// ToolNames are the names of the offered tools.
func (r Request) ToolNames() []string {
	var out []string
	for _, raw := range r.Tools {
		var t struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		_ = json.Unmarshal(raw, &t)
		out = append(out, t.Function.Name)
	}
	return out
}

// Contains reports whether the system prompt mentions s.
func (r Request) Contains(s string) bool { return strings.Contains(r.SystemPrompt(), s) }
