package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"

	"github.com/perpetua-flow/backend/services/ai/internal/aitest"
)

func addTask(e *env, u user, title string) string {
	id := uuid.NewString()
	e.tasks.AddTask(u.id, tasksrpc.Task{ID: id, Title: title, Priority: "medium"})
	return id
}

func TestChatSuggestsValidatedActions(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	a := addTask(e, u, "Write documentation")
	b := addTask(e, u, "Plan the trip")
	var calls []aitest.ToolCall
	calls = append(calls,
		aitest.ToolCall{Name: "complete_task", Arguments: aitest.JSONArgs(map[string]any{"task_id": a, "reason": "You wrote it yesterday."})},
		aitest.ToolCall{Name: "complete_task", Arguments: aitest.JSONArgs(map[string]any{"task_id": uuid.NewString(), "reason": "made up"})},
		aitest.ToolCall{Name: "create_subtasks", Arguments: aitest.JSONArgs(map[string]any{"task_id": b, "reason": "Steps", "titles": []string{" Book hotel ", "book hotel", "Pack"}})},
		aitest.ToolCall{Name: "update_task", Arguments: `{"task_id":"` + b + `","priority":"urgent"}`},
	)
	for i := 0; i < 6; i++ {
		calls = append(calls, aitest.ToolCall{Name: "update_task", Arguments: aitest.JSONArgs(map[string]any{"task_id": a, "title": fmt.Sprintf("Title %d", i)})})
	}
	e.openai.Always(aitest.Reply{Text: "Here is what I suggest.", ToolCalls: calls})

	res := e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "What should I do?", "context": map[string]any{"include_tasks": true, "task_limit": 10}}}).expect(t, 200, "")
	d := res.data
	if d["response"] != "Here is what I suggest." || num(d["credits_used"]) != 1 || num(d["credits_remaining"]) != 4 || d["ai_request_warning"] != false {
		t.Fatalf("answer %s", res.raw)
	}
	actions, _ := d["suggested_actions"].([]any)
	if len(actions) != 3 {
		// complete a, subtasks b, one update of a (the rest repeat it); unknown id and the bad priority dropped
		t.Fatalf("%d suggested actions: %s", len(actions), res.raw)
	}
	first := actions[0].(map[string]any)
	if first["action_type"] != "complete_task" || first["task_id"] != a || first["description"] != "You wrote it yesterday." {
		t.Fatalf("first action %v", first)
	}
	second := actions[1].(map[string]any)
	titles := second["data"].(map[string]any)["titles"].([]any)
	if second["action_type"] != "create_subtasks" || len(titles) != 2 || titles[0] != "Book hotel" {
		t.Fatalf("second action %v", second)
	}
	if e.billing.Balance(u.id) != 4 {
		t.Fatalf("balance %d", e.billing.Balance(u.id))
	}
	if m := e.metrics(t); !strings.Contains(m, `ai_provider_requests_total{kind="chat",outcome="ok"} 1`) ||
		!strings.Contains(m, `ai_credits_charged_total{kind="chat"} 1`) {
		t.Fatalf("metrics lack the chat:\n%s", m)
	}
	seen := e.openai.Requests()[0]
	if !seen.Contains("Write documentation") || !seen.Contains(a) || len(seen.ToolNames()) != 3 {
		t.Fatalf("prompt without the tasks or tools: %q %v", seen.SystemPrompt(), seen.ToolNames())
	}

	// Seven valid suggestions are cut to five.
	u2 := e.user(t, "free", 1)
	calls = nil
	for i := 0; i < 7; i++ {
		id := addTask(e, u2, fmt.Sprintf("Task %d", i))
		calls = append(calls, aitest.ToolCall{Name: "complete_task", Arguments: aitest.JSONArgs(map[string]any{"task_id": id, "reason": "done"})})
	}
	e.openai.Always(aitest.Reply{Text: "ok", ToolCalls: calls})
	res = e.call(t, u2, req{path: "/ai/chat", body: map[string]any{"message": "clean up"}}).expect(t, 200, "")
	if n := len(res.data["suggested_actions"].([]any)); n != 5 {
		t.Fatalf("%d suggestions", n)
	}
}

func TestStreamFirstChunkArrivesBeforeTheModelFinishes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 2)
	task := addTask(e, u, "Write documentation")
	hold := make(chan struct{})
	e.openai.Always(aitest.Reply{
		Chunks:         []string{"First", " second", " third"},
		HoldAfterFirst: hold,
		ToolCalls:      []aitest.ToolCall{{Name: "complete_task", Arguments: aitest.JSONArgs(map[string]any{"task_id": task, "reason": "finished"})}},
	})
	resp := e.do(t, u, req{path: "/ai/chat/stream", body: map[string]any{"message": "Status?"}})
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	// The fake model is still holding the rest of its answer: this chunk can only have
	// come through because the service flushed it at once.
	ev := readEvent(t, r)
	if ev.name != "chunk" || ev.data["text"] != "First" {
		t.Fatalf("first event %+v", ev)
	}
	close(hold)
	var text strings.Builder
	text.WriteString("First")
	for {
		ev = readEvent(t, r)
		if ev.name != "chunk" {
			break
		}
		text.WriteString(ev.data["text"].(string))
	}
	if ev.name != "final" || text.String() != "First second third" {
		t.Fatalf("event %+v after %q", ev, text.String())
	}
	actions := ev.data["suggested_actions"].([]any)
	if len(actions) != 1 || actions[0].(map[string]any)["task_id"] != task || num(ev.data["credits_used"]) != 1 || num(ev.data["credits_remaining"]) != 1 {
		t.Fatalf("final %+v", ev.data)
	}
}

func TestStreamClientDisconnectCancelsTheProviderCall(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 3)
	e.openai.Always(aitest.Reply{Chunks: []string{"Thinking", " more"}, HoldAfterFirst: make(chan struct{})})
	resp := e.do(t, u, req{path: "/ai/chat/stream", body: map[string]any{"message": "Long answer please"}})
	ev := readEvent(t, bufio.NewReader(resp.Body))
	if ev.name != "chunk" {
		t.Fatalf("event %+v", ev)
	}
	resp.Body.Close()
	eventually(t, "the provider call to be cancelled", func() bool { return e.openai.Cancelled() == 1 })
	eventually(t, "the credit to be refunded", func() bool { return e.billing.Balance(u.id) == 3 && e.billing.Refunds() == 1 })
}

func TestNoAPIKeyNamesTheVariable(t *testing.T) {
	t.Parallel()
	e := setup(t, func(v map[string]string) { delete(v, "OPENAI_API_KEY"); delete(v, "DEEPGRAM_API_KEY") })
	free := e.user(t, "free", 5)
	pro := e.user(t, "pro", 50)
	task := addTask(e, free, "Write documentation")
	for _, r := range []req{
		{path: "/ai/chat", body: map[string]any{"message": "hi"}},
		{path: "/ai/chat/stream", body: map[string]any{"message": "hi"}},
		{path: "/ai/generate-subtasks", body: map[string]any{"task_id": task}},
	} {
		res := e.call(t, free, r).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
		if !strings.Contains(res.msg, "OPENAI_API_KEY") {
			t.Fatalf("%s: message %q does not name OPENAI_API_KEY", r.path, res.msg)
		}
	}
	res := e.call(t, pro, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/a.mp3", "duration_seconds": 30}}).
		expect(t, 503, "TRANSCRIPTION_SERVICE_UNAVAILABLE")
	if !strings.Contains(res.msg, "DEEPGRAM_API_KEY") {
		t.Fatalf("message %q does not name DEEPGRAM_API_KEY", res.msg)
	}
	if e.billing.Consumes() != 0 || e.openai.Calls() != 0 {
		t.Fatalf("charged %d times, provider called %d times", e.billing.Consumes(), e.openai.Calls())
	}
}

func TestZeroCreditsIs402AndNothingCharged(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 0)
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}}).expect(t, 402, "INSUFFICIENT_CREDITS")
	e.call(t, u, req{path: "/ai/chat/stream", body: map[string]any{"message": "hi"}}).expect(t, 402, "INSUFFICIENT_CREDITS")
	if e.openai.Calls() != 0 || e.billing.Consumes() != 0 || e.billing.Balance(u.id) != 0 {
		t.Fatalf("provider calls %d, consumes %d", e.openai.Calls(), e.billing.Consumes())
	}
}

func TestReplayNeverCallsTheProviderOrChargesAgain(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	key := uuid.NewString()
	first := e.call(t, u, req{path: "/ai/chat", key: key, body: map[string]any{"message": "hi"}}).expect(t, 200, "")
	again := e.call(t, u, req{path: "/ai/chat", key: key, body: map[string]any{"message": "hi"}}).expect(t, 200, "")
	if string(first.raw) != string(again.raw) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs or unmarked: %s vs %s (%v)", first.raw, again.raw, again.header)
	}
	if e.openai.Calls() != 1 || e.billing.Balance(u.id) != 4 {
		t.Fatalf("provider calls %d, balance %d", e.openai.Calls(), e.billing.Balance(u.id))
	}
	e.call(t, u, req{path: "/ai/chat", key: "-", body: map[string]any{"message": "hi"}}).expect(t, 400, "IDEMPOTENCY_KEY_REQUIRED")
}

func TestRetryAfterAFailureIsChargedOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	key := uuid.NewString()
	e.openai.Always(aitest.Reply{Status: 500})
	e.call(t, u, req{path: "/ai/chat", key: key, body: map[string]any{"message": "hi"}}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
	e.openai.Always(aitest.Reply{Text: "Now it works"})
	res := e.call(t, u, req{path: "/ai/chat", key: key, body: map[string]any{"message": "hi"}}).expect(t, 200, "")
	// The failed attempt was refunded; the retry is a new charge, not a replay of it.
	if res.data["response"] != "Now it works" || e.billing.Balance(u.id) != 4 || num(res.data["credits_remaining"]) != 4 {
		t.Fatalf("answer %s, balance %d", res.raw, e.billing.Balance(u.id))
	}
}

func TestEleventhRequestOnOneTaskInOneSessionIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "pro", 50)
	task := addTask(e, u, "Write documentation")
	for i := 1; i <= 10; i++ {
		path := "/ai/chat"
		body := map[string]any{"message": fmt.Sprintf("question %d", i)}
		if i%2 == 0 {
			path, body = "/ai/generate-subtasks", map[string]any{"task_id": task}
			e.openai.Always(aitest.Reply{Text: `{"subtasks":["One","Two"]}`})
		} else {
			e.openai.Always(aitest.Reply{Text: "answer"})
		}
		res := e.call(t, u, req{path: path, body: body, headers: map[string]string{"X-Task-Id": task}}).expect(t, 200, "")
		if got, want := res.data["ai_request_warning"], i >= 5; got != want {
			t.Fatalf("request %d: ai_request_warning %v, want %v", i, got, want)
		}
	}
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "one more"}, headers: map[string]string{"X-Task-Id": task}}).
		expect(t, 429, "AI_TASK_LIMIT_REACHED")
	e.call(t, u, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": task}}).expect(t, 429, "AI_TASK_LIMIT_REACHED")
	if b := e.billing.Balance(u.id); b != 40 {
		t.Fatalf("balance %d, want 40 (refused requests are free)", b)
	}
	// Another task, or another session, starts its own count.
	other := addTask(e, u, "Other")
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: map[string]string{"X-Task-Id": other}}).expect(t, 200, "")
	e.openai.Always(aitest.Reply{Text: "answer"})
	e.call(t, e.newSession(t, u), req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: map[string]string{"X-Task-Id": task}}).expect(t, 200, "")
}

func TestUnansweredRequestsDoNotCountTowardsTheTaskLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "pro", 10)
	task := addTask(e, u, "Plan the launch")
	onTask := map[string]string{"X-Task-Id": task}
	// The provider fails three times (503, refunded), then the credits run out (402).
	e.openai.Always(aitest.Reply{Status: 500})
	for range 3 {
		e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: onTask}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
		e.call(t, u, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": task}}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
	}
	e.openai.Always(aitest.Reply{Text: "answer"})
	for i := 1; i <= 10; i++ {
		res := e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: onTask}).expect(t, 200, "")
		if got, want := res.data["ai_request_warning"], i >= 5; got != want {
			t.Fatalf("answered request %d: ai_request_warning %v, want %v (failed requests were counted)", i, got, want)
		}
	}
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "one more"}, headers: onTask}).expect(t, 429, "AI_TASK_LIMIT_REACHED")
	// Out of credits on a fresh task: 402 leaves the count untouched too.
	broke := e.user(t, "pro", 0)
	other := addTask(e, broke, "Other")
	for range 12 {
		e.call(t, broke, req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: map[string]string{"X-Task-Id": other}}).
			expect(t, 402, "INSUFFICIENT_CREDITS")
	}
}

func TestBadInputGetsTheDocumentedCodes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	free := e.user(t, "free", 5)
	pro := e.user(t, "pro", 50)
	for _, tc := range []struct {
		name   string
		u      user
		r      req
		status int
		code   string
	}{
		{"empty message", free, req{path: "/ai/chat", body: map[string]any{"message": ""}}, 400, "VALIDATION_ERROR"},
		{"blank message", free, req{path: "/ai/chat/stream", body: map[string]any{"message": "   "}}, 400, "VALIDATION_ERROR"},
		{"2001 characters", free, req{path: "/ai/chat", body: map[string]any{"message": strings.Repeat("a", 2001)}}, 400, "VALIDATION_ERROR"},
		{"task limit 0", free, req{path: "/ai/chat", body: map[string]any{"message": "hi", "context": map[string]any{"task_limit": 0}}}, 400, "VALIDATION_ERROR"},
		{"unknown field", free, req{path: "/ai/chat", body: map[string]any{"message": "hi", "model": "gpt-5"}}, 400, "VALIDATION_ERROR"},
		{"unknown task header", free, req{path: "/ai/chat", body: map[string]any{"message": "hi"}, headers: map[string]string{"X-Task-Id": uuid.NewString()}}, 404, "TASK_NOT_FOUND"},
		{"unknown task for subtasks", free, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": uuid.NewString()}}, 404, "TASK_NOT_FOUND"},
		{"task id not a uuid", free, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": "42"}}, 400, "VALIDATION_ERROR"},
		{"free user transcribing", free, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/a.mp3", "duration_seconds": 30}}, 403, "PRO_TIER_REQUIRED"},
		{"301 seconds", pro, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/a.mp3", "duration_seconds": 301}}, 400, "AUDIO_DURATION_EXCEEDED"},
		{"http audio URL", pro, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "http://files.example/a.mp3", "duration_seconds": 30}}, 400, "VALIDATION_ERROR"},
		{"audio URL of 2049", pro, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/" + strings.Repeat("a", 2049-22), "duration_seconds": 30}}, 400, "VALIDATION_ERROR"},
		{"unknown action", free, req{path: "/ai/confirm-action", body: map[string]any{"action_type": "delete_task", "task_id": uuid.NewString(), "data": map[string]any{}}}, 400, "INVALID_ACTION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.call(t, tc.u, tc.r).expect(t, tc.status, tc.code)
		})
	}
	if e.billing.Consumes() != 0 || e.openai.Calls() != 0 || e.deepgram.Calls() != 0 {
		t.Fatalf("bad input reached billing (%d) or a provider (%d, %d)", e.billing.Consumes(), e.openai.Calls(), e.deepgram.Calls())
	}
}

func TestGenerateSubtasksUsesAJSONSchemaAndTierLimits(t *testing.T) {
	t.Parallel()
	e := setup(t)
	free := e.user(t, "free", 5)
	pro := e.user(t, "pro", 5)
	model := `{"subtasks":[" Outline ","outline","Draft","Review","Publish","Announce","","` + strings.Repeat("x", 201) + `","Celebrate"]}`
	e.openai.Always(aitest.Reply{Text: model})
	for _, tc := range []struct {
		u    user
		want []string
	}{
		{free, []string{"Outline", "Draft", "Review", "Publish"}},
		{pro, []string{"Outline", "Draft", "Review", "Publish", "Announce", "Celebrate"}},
	} {
		task := addTask(e, tc.u, "Write documentation")
		res := e.call(t, tc.u, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": task}}).expect(t, 200, "")
		var got []string
		for _, s := range res.data["suggested_subtasks"].([]any) {
			got = append(got, s.(map[string]any)["title"].(string))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || num(res.data["credits_used"]) != 1 {
			t.Fatalf("%s: %s", tc.u.tier, res.raw)
		}
	}
	for _, r := range e.openai.Requests() {
		if !r.HasJSONSchema() {
			t.Fatalf("no json_schema response format: %+v", r)
		}
	}
	if e.billing.Reasons(free.id)["ai.generate_subtasks"] != 1 {
		t.Fatalf("reasons %v", e.billing.Reasons(free.id))
	}
}

func TestConfirmActionGoesThroughTasks(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 0)
	task := addTask(e, u, "Write documentation")
	res := e.call(t, u, req{path: "/ai/confirm-action", body: map[string]any{
		"action_type": "create_subtasks", "task_id": task, "data": map[string]any{"titles": []string{"Outline", "Draft"}},
	}}).expect(t, 200, "")
	if num(res.data["task"].(map[string]any)["subtask_count"]) != 2 || num(res.data["task"].(map[string]any)["version"]) != 2 {
		t.Fatalf("answer %s", res.raw)
	}
	applied := e.tasks.Applied()
	if len(applied) != 1 {
		t.Fatalf("applied %v", applied)
	}
	for _, a := range applied {
		if a.UserID != u.id || a.Tier != "free" || a.ActionType != "create_subtasks" || a.OperationID == "" {
			t.Fatalf("apply request %+v", a)
		}
	}
	e.call(t, u, req{path: "/ai/confirm-action", body: map[string]any{"action_type": "complete_task", "task_id": uuid.NewString()}}).expect(t, 404, "NOT_FOUND")
	e.tasks.Conflict(task)
	e.call(t, u, req{path: "/ai/confirm-action", body: map[string]any{"action_type": "complete_task", "task_id": task, "data": map[string]any{"version": 1}}}).
		expect(t, 409, "CONFLICT")
	if e.billing.Consumes() != 0 {
		t.Fatal("confirming an action cost credits")
	}
}

func TestBillingUnreachableIs503AndTheProviderIsNotCalled(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	if err := e.billing.Stop(); err != nil {
		t.Fatal(err)
	}
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}}).expect(t, 503, "SERVICE_UNAVAILABLE")
	if e.openai.Calls() != 0 {
		t.Fatal("the provider was called without a charge")
	}
}

func TestAFailedRefundIsRetriedByAJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	e.openai.Always(aitest.Reply{Status: 500})
	e.billing.FailRefunds(true)
	e.call(t, u, req{path: "/ai/chat", body: map[string]any{"message": "hi"}}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
	if b := e.billing.Balance(u.id); b != 4 {
		t.Fatalf("balance %d while billing refuses refunds, want 4", b)
	}
	e.billing.FailRefunds(false)
	eventually(t, "the retried refund", func() bool { return e.billing.Balance(u.id) == 5 })
}

func TestAStreamThatFailedMidAnswerIsNotReplayed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 2)
	key := uuid.NewString()
	e.openai.Always(aitest.Reply{Chunks: []string{"Partial", " rest"}, BreakAfterFirst: true})
	resp := e.do(t, u, req{path: "/ai/chat/stream", key: key, body: map[string]any{"message": "hi"}})
	r := bufio.NewReader(resp.Body)
	readEvent(t, r)
	if ev := readEvent(t, r); ev.name != "error" || ev.data["code"] != "AI_SERVICE_UNAVAILABLE" || ev.data["message"] == "" {
		t.Fatalf("event %+v", ev)
	}
	resp.Body.Close()
	eventually(t, "the refund", func() bool { return e.billing.Balance(u.id) == 2 })
	e.openai.Always(aitest.Reply{Chunks: []string{"Whole answer"}})
	// The key is released when the first handler returns, just after its last event.
	eventually(t, "the key to be released", func() bool {
		resp = e.do(t, u, req{path: "/ai/chat/stream", key: key, body: map[string]any{"message": "hi"}})
		if resp.StatusCode == http.StatusConflict {
			resp.Body.Close()
			return false
		}
		return true
	})
	defer resp.Body.Close()
	if resp.Header.Get("Idempotent-Replayed") == "true" {
		t.Fatal("the failed stream was replayed")
	}
	r = bufio.NewReader(resp.Body)
	if ev := readEvent(t, r); ev.name != "chunk" || ev.data["text"] != "Whole answer" {
		t.Fatalf("event %+v", ev)
	}
	if ev := readEvent(t, r); ev.name != "final" || num(ev.data["credits_remaining"]) != 1 {
		t.Fatalf("final %+v", ev)
	}
}

func TestConcurrentRetriesWithOneKeyChargeOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	u := e.user(t, "free", 5)
	key := uuid.NewString()
	const n = 10
	statuses := make(chan int, n)
	for i := 0; i < n; i++ {
		hr := e.request(t, u, req{path: "/ai/chat", key: key, body: map[string]any{"message": "hi"}})
		go func() {
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	ok := 0
	for i := 0; i < n; i++ {
		switch s := <-statuses; s {
		case http.StatusOK:
			ok++
		case http.StatusConflict: // IDEMPOTENCY_IN_PROGRESS while the first one runs
		default:
			t.Fatalf("status %d", s)
		}
	}
	if ok == 0 || e.openai.Calls() != 1 || e.billing.Balance(u.id) != 4 {
		t.Fatalf("%d answered, provider calls %d, balance %d", ok, e.openai.Calls(), e.billing.Balance(u.id))
	}
}

func TestProviderFailuresAnswer503AndRefund(t *testing.T) {
	t.Parallel()
	e := setup(t, func(v map[string]string) { v["AI_PROVIDER_TIMEOUT"] = "300ms" })
	for _, tc := range []struct {
		name   string
		model  aitest.Reply
		speech aitest.Transcript
	}{
		{"server error", aitest.Reply{Status: http.StatusInternalServerError}, aitest.Transcript{Status: http.StatusInternalServerError}},
		{"rate limited", aitest.Reply{Status: http.StatusTooManyRequests}, aitest.Transcript{Status: http.StatusTooManyRequests}},
		{"timeout", aitest.Reply{Block: true}, aitest.Transcript{Block: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.user(t, "pro", 50)
			task := addTask(e, u, "Write documentation")
			e.openai.Always(tc.model)
			e.deepgram.Always(tc.speech)
			refunds := e.billing.Refunds()
			for _, path := range []string{"/ai/chat", "/ai/chat/stream"} {
				e.call(t, u, req{path: path, body: map[string]any{"message": "hi"}}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
			}
			e.call(t, u, req{path: "/ai/generate-subtasks", body: map[string]any{"task_id": task}}).expect(t, 503, "AI_SERVICE_UNAVAILABLE")
			e.call(t, u, req{path: "/ai/transcribe", body: map[string]any{"audio_url": "https://files.example/memo.m4a", "duration_seconds": 30}}).
				expect(t, 503, "TRANSCRIPTION_SERVICE_UNAVAILABLE")
			if b := e.billing.Balance(u.id); b != 50 {
				t.Fatalf("balance %d after failures, want 50", b)
			}
			if n := e.billing.Refunds() - refunds; n != 4 {
				t.Fatalf("%d refunds, want 4", n)
			}
		})
	}
}
