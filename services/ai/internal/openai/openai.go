// Package openai is the chat model of the ai service, built on sashabaranov/go-openai and
// pointed at OPENAI_BASE_URL (the real API, or a local fake in tests): plain and streamed
// chat completions with tools, and JSON-schema structured output.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
)

// Config says how to reach the model.
type Config struct {
	APIKey  string
	BaseURL string // e.g. https://api.openai.com/v1
	Model   string // e.g. gpt-4o-mini
	// HTTPClient is optional. Deadlines come from the caller's context, not from here.
	HTTPClient *http.Client
}

// maxCompletionTokens bounds every answer, so a runaway generation cannot cost more than
// a chat is worth.
const maxCompletionTokens = 800

// Client implements assistant.Model.
type Client struct {
	c     *goopenai.Client
	model string
}

// New makes a client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("openai: API key is empty")
	}
	if cfg.Model == "" {
		return nil, errors.New("openai: model is empty")
	}
	oc := goopenai.DefaultConfig(cfg.APIKey)
	if cfg.BaseURL != "" {
		oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	}
	if cfg.HTTPClient != nil {
		oc.HTTPClient = cfg.HTTPClient
	}
	return &Client{c: goopenai.NewClientWithConfig(oc), model: cfg.Model}, nil
}

func (c *Client) request(p assistant.ChatPrompt) goopenai.ChatCompletionRequest {
	req := goopenai.ChatCompletionRequest{
		Model: c.model,
		Messages: []goopenai.ChatCompletionMessage{
			{Role: goopenai.ChatMessageRoleSystem, Content: p.System},
			{Role: goopenai.ChatMessageRoleUser, Content: p.User},
		},
		MaxCompletionTokens: maxCompletionTokens,
	}
	for _, t := range p.Tools {
		req.Tools = append(req.Tools, goopenai.Tool{
			Type: goopenai.ToolTypeFunction,
			Function: &goopenai.FunctionDefinition{
				Name:        t.Name,
				Description: t.Description,
				Parameters:  t.Parameters,
			},
		})
	}
	return req
}

// Chat is one chat completion.
func (c *Client) Chat(ctx context.Context, p assistant.ChatPrompt) (assistant.ChatReply, error) {
	resp, err := c.c.CreateChatCompletion(ctx, c.request(p))
	if err != nil {
		return assistant.ChatReply{}, fmt.Errorf("openai: chat: %w", err)
	}
	reply := assistant.ChatReply{Usage: usage(resp.Model, resp.Usage, c.model)}
	if len(resp.Choices) == 0 {
		return reply, errors.New("openai: chat: no choices")
	}
	msg := resp.Choices[0].Message
	reply.Text = msg.Content
	for _, tc := range msg.ToolCalls {
		if tc.Type != "" && tc.Type != goopenai.ToolTypeFunction {
			continue
		}
		reply.ToolCalls = append(reply.ToolCalls, assistant.ToolCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return reply, nil
}

// toolCallParts gathers one tool call whose name and arguments arrive in pieces across
// stream chunks, keyed by the call's index.
type toolCallParts struct {
	name string
	args strings.Builder
}

// StreamChat streams a chat completion: each content delta goes to onText as it arrives;
// tool-call deltas are assembled by index across chunks and returned at the end.
func (c *Client) StreamChat(ctx context.Context, p assistant.ChatPrompt, onText func(string) error) (assistant.ChatReply, error) {
	req := c.request(p)
	req.Stream = true
	req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
	stream, err := c.c.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return assistant.ChatReply{}, fmt.Errorf("openai: stream: %w", err)
	}
	defer stream.Close()

	var (
		reply assistant.ChatReply
		text  strings.Builder
		calls = map[int]*toolCallParts{}
		model string
	)
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return assistant.ChatReply{}, fmt.Errorf("openai: stream: %w", err)
		}
		if chunk.Model != "" {
			model = chunk.Model
		}
		if chunk.Usage != nil {
			reply.Usage = usage(model, *chunk.Usage, c.model)
		}
		if len(chunk.Choices) == 0 {
			continue
		}
		delta := chunk.Choices[0].Delta
		if delta.Content != "" {
			text.WriteString(delta.Content)
			if err := onText(delta.Content); err != nil {
				return assistant.ChatReply{}, fmt.Errorf("openai: stream: deliver: %w", err)
			}
		}
		for i, tc := range delta.ToolCalls {
			idx := i
			if tc.Index != nil {
				idx = *tc.Index
			}
			part, ok := calls[idx]
			if !ok {
				part = &toolCallParts{}
				calls[idx] = part
			}
			if tc.Function.Name != "" {
				part.name = tc.Function.Name
			}
			part.args.WriteString(tc.Function.Arguments)
		}
	}
	reply.Text = text.String()
	if reply.Usage.Model == "" {
		reply.Usage.Model = firstNonEmpty(model, c.model)
	}
	indexes := make([]int, 0, len(calls))
	for i := range calls {
		indexes = append(indexes, i)
	}
	sort.Ints(indexes)
	for _, i := range indexes {
		reply.ToolCalls = append(reply.ToolCalls, assistant.ToolCall{Name: calls[i].name, Arguments: calls[i].args.String()})
	}
	return reply, nil
}

// Structured asks for one JSON object that follows p.Schema (response_format json_schema,
// strict).
func (c *Client) Structured(ctx context.Context, p assistant.StructuredPrompt) ([]byte, assistant.Usage, error) {
	schema, err := json.Marshal(p.Schema)
	if err != nil {
		return nil, assistant.Usage{}, fmt.Errorf("openai: schema: %w", err)
	}
	req := c.request(assistant.ChatPrompt{System: p.System, User: p.User})
	req.ResponseFormat = &goopenai.ChatCompletionResponseFormat{
		Type: goopenai.ChatCompletionResponseFormatTypeJSONSchema,
		JSONSchema: &goopenai.ChatCompletionResponseFormatJSONSchema{
			Name:   p.SchemaName,
			Schema: json.RawMessage(schema),
			Strict: true,
		},
	}
	resp, err := c.c.CreateChatCompletion(ctx, req)
	if err != nil {
		return nil, assistant.Usage{}, fmt.Errorf("openai: structured: %w", err)
	}
	u := usage(resp.Model, resp.Usage, c.model)
	if len(resp.Choices) == 0 {
		return nil, u, errors.New("openai: structured: no choices")
	}
	msg := resp.Choices[0].Message
	if msg.Refusal != "" {
		return nil, u, errors.New("openai: structured: the model refused")
	}
	return []byte(msg.Content), u, nil
}

func usage(model string, u goopenai.Usage, fallback string) assistant.Usage {
	return assistant.Usage{Model: firstNonEmpty(model, fallback), PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
