package openai_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/perpetua-flow/backend/services/ai/internal/aitest"
	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/internal/openai"
)

func setup(t *testing.T) (*aitest.OpenAI, *openai.Client) {
	t.Helper()
	fake := aitest.NewOpenAI(t)
	c, err := openai.New(openai.Config{APIKey: "sk-test", BaseURL: fake.URL, Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	return fake, c
}

var prompt = assistant.ChatPrompt{System: "sys", User: "hi", Tools: assistant.Tools(assistant.TierFree)}

func TestChatWithToolCalls(t *testing.T) {
	t.Parallel()
	fake, c := setup(t)
	fake.Always(aitest.Reply{Text: "Done soon", ToolCalls: []aitest.ToolCall{{Name: "complete_task", Arguments: `{"task_id":"x"}`}}})
	reply, err := c.Chat(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Text != "Done soon" || len(reply.ToolCalls) != 1 || reply.ToolCalls[0].Arguments != `{"task_id":"x"}` {
		t.Fatalf("reply %+v", reply)
	}
	if reply.Usage.PromptTokens != 42 || reply.Usage.CompletionTokens != 7 || reply.Usage.Model != aitest.FakeModel {
		t.Fatalf("usage %+v", reply.Usage)
	}
	req := fake.Requests()[0]
	if req.Authorization != "Bearer sk-test" || req.Model != "gpt-4o-mini" || len(req.ToolNames()) != 3 {
		t.Fatalf("request %+v", req)
	}
}

func TestStreamAssemblesToolCallDeltas(t *testing.T) {
	t.Parallel()
	fake, c := setup(t)
	args0 := `{"task_id":"0b9d7c8e-7f1a-4c52-9e55-6a3c1c2f4b10","reason":"it is done"}`
	args1 := `{"task_id":"1b9d7c8e-7f1a-4c52-9e55-6a3c1c2f4b10","titles":["a","b"]}`
	fake.Always(aitest.Reply{Chunks: []string{"Hel", "lo ", "there"}, ToolCalls: []aitest.ToolCall{
		{Name: "complete_task", Arguments: args0}, {Name: "create_subtasks", Arguments: args1},
	}})
	var got []string
	reply, err := c.StreamChat(context.Background(), prompt, func(s string) error { got = append(got, s); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "Hel|lo |there" || reply.Text != "Hello there" {
		t.Fatalf("chunks %q, text %q", got, reply.Text)
	}
	if len(reply.ToolCalls) != 2 || reply.ToolCalls[0].Name != "complete_task" || reply.ToolCalls[0].Arguments != args0 ||
		reply.ToolCalls[1].Name != "create_subtasks" || reply.ToolCalls[1].Arguments != args1 {
		t.Fatalf("tool calls %+v", reply.ToolCalls)
	}
	if reply.Usage.CompletionTokens != 7 {
		t.Fatalf("usage %+v", reply.Usage)
	}
	if !fake.Requests()[0].Stream {
		t.Fatal("not a streamed request")
	}
}

func TestStructuredSendsJSONSchema(t *testing.T) {
	t.Parallel()
	fake, c := setup(t)
	fake.Always(aitest.Reply{Text: `{"subtasks":["a","b"]}`})
	raw, _, err := c.Structured(context.Background(), assistant.SubtasksPrompt(assistant.Task{ID: "t", Title: "Write"}, assistant.TierFree))
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"subtasks":["a","b"]}` {
		t.Fatalf("raw %s", raw)
	}
	req := fake.Requests()[0]
	if !req.HasJSONSchema() || !strings.Contains(string(req.ResponseFormat.JSONSchema), `"strict":true`) {
		t.Fatalf("response_format %+v", req.ResponseFormat)
	}
}

func TestProviderErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reply aitest.Reply
	}{
		{"rate limited", aitest.Reply{Status: 429}},
		{"server error", aitest.Reply{Status: 500}},
		{"timeout", aitest.Reply{Block: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake, c := setup(t)
			fake.Always(tc.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := c.Chat(ctx, prompt); err == nil {
				t.Fatal("chat: no error")
			}
			if _, err := c.StreamChat(ctx, prompt, func(string) error { return nil }); err == nil {
				t.Fatal("stream: no error")
			}
		})
	}
}
