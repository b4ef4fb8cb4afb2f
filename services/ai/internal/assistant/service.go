package assistant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/clock"
)

// Model is the chat model (OpenAI).
type Model interface {
	Chat(ctx context.Context, p ChatPrompt) (ChatReply, error)
	// StreamChat calls onText with each piece of text as it arrives; an error from onText
	// (the client went away) stops the call.
	StreamChat(ctx context.Context, p ChatPrompt, onText func(text string) error) (ChatReply, error)
	// Structured answers with one JSON object that follows p.Schema.
	Structured(ctx context.Context, p StructuredPrompt) ([]byte, Usage, error)
}

// Transcript is what the speech provider heard.
type Transcript struct {
	Text       string
	Language   string
	Confidence float64
	Model      string
}

// Transcriber is the speech provider (Deepgram), pre-recorded audio from a URL.
type Transcriber interface {
	Transcribe(ctx context.Context, audioURL string) (Transcript, error)
}

// Credits is billing's credit ledger. Errors carry apperr codes (INSUFFICIENT_CREDITS,
// SERVICE_UNAVAILABLE when billing does not answer).
type Credits interface {
	// Consume debits amount once per operationID and returns the total left.
	Consume(ctx context.Context, userID, operationID string, amount int, reason string) (remaining int, err error)
	// Refund gives back what operationID took.
	Refund(ctx context.Context, userID, operationID, reason string) error
}

// ApplyResult is the task after a confirmed action, as the tasks service shows it.
type ApplyResult struct {
	Task                 map[string]any
	UnlockedAchievements []map[string]any
}

// Tasks is the tasks service. Errors carry its apperr codes (NOT_FOUND, CONFLICT, …).
type Tasks interface {
	// Context is the user's open tasks (newest first, at most limit) or, with taskID,
	// that one task.
	Context(ctx context.Context, userID, taskID string, limit int) ([]Task, error)
	Note(ctx context.Context, userID, noteID string) (Note, error)
	Apply(ctx context.Context, userID, tier string, a ConfirmedAction, operationID string) (ApplyResult, error)
}

// VoiceNoteResult is the end of a background transcription.
type VoiceNoteResult struct {
	NoteID     string
	UserID     string
	OK         bool
	Text       string
	Language   string
	Confidence float64
	Reason     string
}

// Store is the ai schema.
type Store interface {
	// CountTaskRequest counts one more request on (session, task) and returns the count;
	// AI_TASK_LIMIT_REACHED once TaskRequestLimit were counted within TaskCounterTTL.
	CountTaskRequest(ctx context.Context, userID, sessionID, taskID string, now time.Time) (int, error)
	// UncountTaskRequest gives back a counted request that got no answer.
	UncountTaskRequest(ctx context.Context, userID, sessionID, taskID string, now time.Time) error
	LogRequest(ctx context.Context, l RequestLog) error
	// LogNoteConverted writes the log row and the ai.note.converted event together.
	LogNoteConverted(ctx context.Context, l RequestLog, noteID string) error
	// VoiceNoteFinished reports whether the note's transcription already ended.
	VoiceNoteFinished(ctx context.Context, userID, noteID string) (bool, error)
	// FinishVoiceNote records the end once and, the first time only, emits
	// ai.transcription.completed|failed with it.
	FinishVoiceNote(ctx context.Context, l RequestLog, r VoiceNoteResult) error
	// Refunds is how many times credits for (user, base operation) were given back, so a
	// retry after a refund charges under a new operation id.
	Refunds(ctx context.Context, userID, baseOperationID string) (int, error)
	// RecordRefund notes that operationID (an attempt of base) is being given back.
	RecordRefund(ctx context.Context, userID, baseOperationID, operationID string, at time.Time) error
}

// Compensator retries a refund that failed, later, until billing takes it.
type Compensator interface {
	RefundLater(ctx context.Context, userID, operationID, reason string) error
}

// Config wires a Service. Model or Transcriber is nil when its key is not configured.
type Config struct {
	Model             Model
	ModelName         string
	Transcriber       Transcriber
	TranscriberName   string
	Credits           Credits
	Tasks             Tasks
	Store             Store
	Refunds           Compensator
	Clock             clock.Clock
	ProviderTimeout   time.Duration
	Logger            *slog.Logger
	MissingModelKey   string // the variable to set when Model is nil
	MissingSpeechKey  string // the variable to set when Transcriber is nil
	refundCallTimeout time.Duration
}

// Service runs the AI use cases: reserve credits, call the provider with a deadline, then
// settle (keep the charge) or compensate (refund). No database transaction is open across
// a provider or NATS call.
type Service struct{ cfg Config }

// refundTimeout bounds the synchronous refund before it is handed to the retry job.
const refundTimeout = 5 * time.Second

// New checks cfg.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Credits == nil, cfg.Tasks == nil, cfg.Store == nil, cfg.Refunds == nil:
		return nil, errors.New("assistant: credits, tasks, store and refunds are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProviderTimeout <= 0 {
		cfg.ProviderTimeout = 30 * time.Second
	}
	if cfg.MissingModelKey == "" {
		cfg.MissingModelKey = "OPENAI_API_KEY"
	}
	if cfg.MissingSpeechKey == "" {
		cfg.MissingSpeechKey = "DEEPGRAM_API_KEY"
	}
	cfg.refundCallTimeout = refundTimeout
	return &Service{cfg: cfg}, nil
}

// operationNamespace makes operation ids UUIDs (billing keys its operations by them) that
// are stable for one (user, Idempotency-Key, kind, attempt).
var operationNamespace = uuid.MustParse("0b9d7c8e-7f1a-4c52-9e55-6a3c1c2f4b10")

// BaseOperationID is the credit operation of one client request: the same user, key and
// kind always give the same id, so a retried request never charges twice.
func BaseOperationID(userID, idempotencyKey string, kind Kind) string {
	return uuid.NewSHA1(operationNamespace, []byte(userID+"\x00"+idempotencyKey+"\x00"+string(kind))).String()
}

// attemptOperationID is the id of the n-th charge of base (after n refunds). A request
// whose charge was refunded (the provider failed, 503 is not stored by the idempotency
// layer) may be retried with the same key; it must be charged again, under a new id.
func attemptOperationID(base string, n int) string {
	if n == 0 {
		return base
	}
	return uuid.NewSHA1(operationNamespace, []byte(fmt.Sprintf("%s\x00%d", base, n))).String()
}

// reservation is a charge that may still be refunded.
type reservation struct {
	userID    string
	base      string
	op        string
	amount    int
	kind      Kind
	remaining int
}

func (s *Service) reserve(ctx context.Context, userID, base string, kind Kind, amount int) (reservation, error) {
	n, err := s.cfg.Store.Refunds(ctx, userID, base)
	if err != nil {
		return reservation{}, err
	}
	r := reservation{userID: userID, base: base, op: attemptOperationID(base, n), amount: amount, kind: kind}
	r.remaining, err = s.cfg.Credits.Consume(ctx, userID, r.op, amount, kind.Reason())
	if err != nil {
		if chargeUnconfirmed(err) {
			// Billing may have applied the consume and lost only its answer: give it back
			// (a refund of an operation billing never saw changes nothing), so a failed
			// request never costs credits and a retry is charged under a new operation id.
			s.release(ctx, r, "charge_unconfirmed")
		}
		return reservation{}, err
	}
	return r, nil
}

// chargeUnconfirmed reports a consume whose outcome is unknown: billing did not answer in
// time, could not be reached, or the caller left mid-call.
func chargeUnconfirmed(err error) bool {
	return apperr.CodeOf(err) == apperr.ServiceUnavailable ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// release refunds r. It runs detached from the request (the client may be gone) and, when
// billing does not take the refund now, hands it to the retry job.
func (s *Service) release(ctx context.Context, r reservation, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.refundCallTimeout)
	defer cancel()
	log := s.cfg.Logger.With("user_id", r.userID, "operation_id", r.op, "kind", r.kind)
	if err := s.cfg.Store.RecordRefund(ctx, r.userID, r.base, r.op, s.cfg.Clock.Now()); err != nil {
		log.ErrorContext(ctx, "record refund", "err", err)
	}
	reason := r.kind.Reason() + ":" + why
	err := s.cfg.Credits.Refund(ctx, r.userID, r.op, reason)
	if err == nil {
		return
	}
	log.WarnContext(ctx, "refund failed, retrying later", "err", err)
	if err := s.cfg.Refunds.RefundLater(ctx, r.userID, r.op, reason); err != nil {
		log.ErrorContext(ctx, "refund could not be scheduled; credits must be returned by hand", "err", err)
	}
}

// uncount gives back the (session, task) request counted for taskID ("" counted nothing)
// when the request ends without an answer. It runs detached from the request; a failure
// only costs the user one of their ten requests, so it is logged, not returned.
func (s *Service) uncount(ctx context.Context, c Caller, taskID string) {
	if taskID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	if err := s.cfg.Store.UncountTaskRequest(ctx, c.UserID, c.SessionID, taskID, s.cfg.Clock.Now()); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "give back the task request count", "err", err, "task_id", taskID)
	}
}

func (s *Service) log(ctx context.Context, l RequestLog) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	if err := s.cfg.Store.LogRequest(ctx, l); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "request log", "err", err, "kind", l.Kind)
	}
}

// unavailable is the 503 of a provider that failed, timed out or refused (429).
func unavailable(code apperr.Code, what string, cause error) error {
	return apperr.Wrap(cause, code, what+" is unavailable right now; no credits were charged, please try again")
}

// missingKey is the 503 of a provider without a key: it names the variable to set.
func missingKey(code apperr.Code, variable string) error {
	what := "the AI model"
	if code == apperr.TranscriptionServiceUnavailable {
		what = "transcription"
	}
	return apperr.New(code, what+" is not configured on this server: set "+variable)
}

// providerFailed maps a provider error: the caller's own cancellation stays a
// cancellation (nobody is listening), anything else is a 503 of code.
func providerFailed(ctx context.Context, code apperr.Code, what string, err error) (string, error) {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		return OutcomeCancelled, ctx.Err()
	}
	return OutcomeProviderError, unavailable(code, what, err)
}

// ChatOutput is the answer of a chat (the final event of a streamed one).
type ChatOutput struct {
	Response         string
	SuggestedActions []SuggestedAction
	CreditsUsed      int
	CreditsRemaining int
	Warning          bool
}

type chatPlan struct {
	prompt  ChatPrompt
	known   map[string]Task
	warning bool
	// counted is the task whose (session, task) counter this request took, if any.
	counted string
}

// prepare checks everything that can fail before credits are taken.
func (s *Service) prepare(ctx context.Context, c Caller, in ChatInput) (chatPlan, error) {
	if err := in.Validate(); err != nil {
		return chatPlan{}, err
	}
	if s.cfg.Model == nil {
		return chatPlan{}, missingKey(apperr.AIServiceUnavailable, s.cfg.MissingModelKey)
	}
	known := map[string]Task{}
	var tasks []Task
	warning, counted := false, ""
	if in.TaskID != "" {
		t, err := s.task(ctx, c.UserID, in.TaskID)
		if err != nil {
			return chatPlan{}, err
		}
		n, err := s.cfg.Store.CountTaskRequest(ctx, c.UserID, c.SessionID, t.ID, s.cfg.Clock.Now())
		if err != nil {
			return chatPlan{}, err
		}
		warning = RequestWarning(n)
		counted = t.ID
		known[t.ID] = t
		tasks = append(tasks, t)
	}
	if in.IncludeTasks {
		list, err := s.cfg.Tasks.Context(ctx, c.UserID, "", in.TaskLimit)
		if err != nil {
			s.uncount(ctx, c, counted)
			return chatPlan{}, err
		}
		for _, t := range list {
			if _, dup := known[t.ID]; !dup {
				known[t.ID] = t
				tasks = append(tasks, t)
			}
		}
	}
	p := ChatPrompt{System: ChatSystemPrompt(tasks, in.TaskID, s.cfg.Clock.Now()), User: in.Message}
	if len(tasks) > 0 {
		p.Tools = Tools(c.Tier)
	}
	return chatPlan{prompt: p, known: known, warning: warning, counted: counted}, nil
}

// task is one of the user's tasks, TASK_NOT_FOUND when it is not theirs.
func (s *Service) task(ctx context.Context, userID, taskID string) (Task, error) {
	list, err := s.cfg.Tasks.Context(ctx, userID, taskID, 1)
	if apperr.CodeOf(err) == apperr.NotFound || (err == nil && len(list) == 0) {
		return Task{}, apperr.New(apperr.TaskNotFound, "task not found")
	}
	if err != nil {
		return Task{}, err
	}
	return list[0], nil
}

// Chat answers one message (POST /ai/chat).
func (s *Service) Chat(ctx context.Context, c Caller, in ChatInput) (ChatOutput, error) {
	return s.chat(ctx, c, in, nil)
}

// ChatStream answers one message, handing text to onText as the model produces it
// (POST /ai/chat/stream). Errors returned before onText was first called leave the
// client's response untouched.
func (s *Service) ChatStream(ctx context.Context, c Caller, in ChatInput, onText func(string) error) (ChatOutput, error) {
	return s.chat(ctx, c, in, onText)
}

func (s *Service) chat(ctx context.Context, c Caller, in ChatInput, onText func(string) error) (ChatOutput, error) {
	plan, err := s.prepare(ctx, c, in)
	if err != nil {
		return ChatOutput{}, err
	}
	res, err := s.reserve(ctx, c.UserID, BaseOperationID(c.UserID, c.IdempotencyKey, KindChat), KindChat, CostChat)
	if err != nil {
		s.uncount(ctx, c, plan.counted)
		return ChatOutput{}, err
	}
	start := s.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	var reply ChatReply
	if onText == nil {
		reply, err = s.cfg.Model.Chat(pctx, plan.prompt)
	} else {
		reply, err = s.cfg.Model.StreamChat(pctx, plan.prompt, onText)
	}
	entry := RequestLog{UserID: c.UserID, Kind: KindChat, Model: s.cfg.ModelName, Usage: reply.Usage,
		Latency: s.cfg.Clock.Now().Sub(start), OperationID: res.op, At: start}
	if err != nil {
		entry.Outcome, err = providerFailed(ctx, apperr.AIServiceUnavailable, "the AI service", err)
		s.release(ctx, res, entry.Outcome)
		s.uncount(ctx, c, plan.counted)
		s.log(ctx, entry)
		return ChatOutput{}, err
	}
	entry.Outcome, entry.Credits = OutcomeOK, res.amount
	s.log(ctx, entry)
	return ChatOutput{
		Response:         reply.Text,
		SuggestedActions: SuggestActions(reply.ToolCalls, plan.known, c.Tier),
		CreditsUsed:      res.amount,
		CreditsRemaining: res.remaining,
		Warning:          plan.warning,
	}, nil
}

// SubtasksOutput is the answer of POST /ai/generate-subtasks.
type SubtasksOutput struct {
	Titles           []string
	CreditsUsed      int
	CreditsRemaining int
	Warning          bool
}

// GenerateSubtasks suggests subtask titles for one of the user's tasks; it creates nothing.
func (s *Service) GenerateSubtasks(ctx context.Context, c Caller, taskID string) (SubtasksOutput, error) {
	if !validUUID(taskID) {
		return SubtasksOutput{}, apperr.Invalid(apperr.Field("task_id", "must be a task id"))
	}
	if s.cfg.Model == nil {
		return SubtasksOutput{}, missingKey(apperr.AIServiceUnavailable, s.cfg.MissingModelKey)
	}
	t, err := s.task(ctx, c.UserID, taskID)
	if err != nil {
		return SubtasksOutput{}, err
	}
	n, err := s.cfg.Store.CountTaskRequest(ctx, c.UserID, c.SessionID, t.ID, s.cfg.Clock.Now())
	if err != nil {
		return SubtasksOutput{}, err
	}
	res, err := s.reserve(ctx, c.UserID, BaseOperationID(c.UserID, c.IdempotencyKey, KindGenerateSubtasks), KindGenerateSubtasks, CostGenerateSubtasks)
	if err != nil {
		s.uncount(ctx, c, t.ID)
		return SubtasksOutput{}, err
	}
	start := s.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	raw, usage, err := s.cfg.Model.Structured(pctx, SubtasksPrompt(t, c.Tier))
	var titles []string
	if err == nil {
		if titles, err = ParseSubtasks(raw, c.Tier); err == nil && len(titles) == 0 {
			err = errors.New("the model suggested no usable subtask")
		}
	}
	entry := RequestLog{UserID: c.UserID, Kind: KindGenerateSubtasks, Model: s.cfg.ModelName, Usage: usage,
		Latency: s.cfg.Clock.Now().Sub(start), OperationID: res.op, At: start}
	if err != nil {
		entry.Outcome, err = providerFailed(ctx, apperr.AIServiceUnavailable, "the AI service", err)
		s.release(ctx, res, entry.Outcome)
		s.uncount(ctx, c, t.ID)
		s.log(ctx, entry)
		return SubtasksOutput{}, err
	}
	entry.Outcome, entry.Credits = OutcomeOK, res.amount
	s.log(ctx, entry)
	return SubtasksOutput{Titles: titles, CreditsUsed: res.amount, CreditsRemaining: res.remaining, Warning: RequestWarning(n)}, nil
}

// NoteOutput is the answer of POST /notes/{id}/convert.
type NoteOutput struct {
	Suggestion       TaskSuggestion
	CreditsUsed      int
	CreditsRemaining int
}

// ConvertNote suggests a task from one of the user's notes; it creates nothing, and emits
// ai.note.converted so the tasks service counts it toward notes_10.
func (s *Service) ConvertNote(ctx context.Context, c Caller, noteID string) (NoteOutput, error) {
	if !validUUID(noteID) {
		return NoteOutput{}, apperr.New(apperr.NotFound, "note not found")
	}
	if s.cfg.Model == nil {
		return NoteOutput{}, missingKey(apperr.AIServiceUnavailable, s.cfg.MissingModelKey)
	}
	note, err := s.cfg.Tasks.Note(ctx, c.UserID, noteID)
	if err != nil {
		return NoteOutput{}, err
	}
	if strings.TrimSpace(note.Content) == "" {
		return NoteOutput{}, apperr.Invalid(apperr.Field("content", "the note has no text to convert yet"))
	}
	res, err := s.reserve(ctx, c.UserID, BaseOperationID(c.UserID, c.IdempotencyKey, KindNoteConvert), KindNoteConvert, CostNoteConvert)
	if err != nil {
		return NoteOutput{}, err
	}
	start := s.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	raw, usage, err := s.cfg.Model.Structured(pctx, NotePrompt(note))
	var sug TaskSuggestion
	if err == nil {
		sug, err = ParseTaskSuggestion(raw)
	}
	entry := RequestLog{UserID: c.UserID, Kind: KindNoteConvert, Model: s.cfg.ModelName, Usage: usage,
		Latency: s.cfg.Clock.Now().Sub(start), OperationID: res.op, At: start}
	if err != nil {
		entry.Outcome, err = providerFailed(ctx, apperr.AIServiceUnavailable, "the AI service", err)
		s.release(ctx, res, entry.Outcome)
		s.log(ctx, entry)
		return NoteOutput{}, err
	}
	entry.Outcome, entry.Credits = OutcomeOK, res.amount
	lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer lcancel()
	if err := s.cfg.Store.LogNoteConverted(lctx, entry, note.ID); err != nil {
		// The user paid and gets the answer; only the achievement count may lag.
		s.cfg.Logger.ErrorContext(ctx, "note converted event", "err", err, "note_id", note.ID)
	}
	return NoteOutput{Suggestion: sug, CreditsUsed: res.amount, CreditsRemaining: res.remaining}, nil
}

// TranscribeOutput is the answer of POST /ai/transcribe.
type TranscribeOutput struct {
	Transcript       Transcript
	CreditsUsed      int
	CreditsRemaining int
}

// Transcribe transcribes audio at a URL for a Pro user (5 credits per started minute).
func (s *Service) Transcribe(ctx context.Context, c Caller, in TranscribeInput) (TranscribeOutput, error) {
	if c.Tier != TierPro {
		return TranscribeOutput{}, apperr.New(apperr.ProTierRequired, "transcription is a Pro feature")
	}
	if err := in.Validate(); err != nil {
		return TranscribeOutput{}, err
	}
	if s.cfg.Transcriber == nil {
		return TranscribeOutput{}, missingKey(apperr.TranscriptionServiceUnavailable, s.cfg.MissingSpeechKey)
	}
	cost := TranscriptionCost(in.DurationSeconds)
	res, err := s.reserve(ctx, c.UserID, BaseOperationID(c.UserID, c.IdempotencyKey, KindTranscribe), KindTranscribe, cost)
	if err != nil {
		return TranscribeOutput{}, err
	}
	start := s.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	tr, err := s.cfg.Transcriber.Transcribe(pctx, in.AudioURL)
	entry := RequestLog{UserID: c.UserID, Kind: KindTranscribe, Model: s.cfg.TranscriberName,
		Latency: s.cfg.Clock.Now().Sub(start), OperationID: res.op, At: start}
	if tr.Model != "" {
		entry.Model = tr.Model
	}
	if err != nil {
		entry.Outcome, err = providerFailed(ctx, apperr.TranscriptionServiceUnavailable, "the transcription service", err)
		s.release(ctx, res, entry.Outcome)
		s.log(ctx, entry)
		return TranscribeOutput{}, err
	}
	entry.Outcome, entry.Credits = OutcomeOK, res.amount
	s.log(ctx, entry)
	return TranscribeOutput{Transcript: tr, CreditsUsed: res.amount, CreditsRemaining: res.remaining}, nil
}

// ConfirmAction runs one suggested action the user confirmed, through the tasks service
// (activity source "ai"); the tasks service's errors (404, 409, …) pass through.
func (s *Service) ConfirmAction(ctx context.Context, c Caller, actionType, taskID string, data []byte) (ApplyResult, error) {
	a, err := ParseConfirmedAction(actionType, taskID, data, c.Tier)
	if err != nil {
		return ApplyResult{}, err
	}
	return s.cfg.Tasks.Apply(ctx, c.UserID, c.Tier, a, BaseOperationID(c.UserID, c.IdempotencyKey, KindConfirmAction))
}

// VoiceNote is a tasks.note.voice_created event.
type VoiceNote struct {
	NoteID          string
	UserID          string
	VoiceURL        string
	DurationSeconds int
	// Final is true on the event's last delivery (events.LastAttempt): billing still not
	// answering then fails the note (uncharged) instead of leaving it pending for ever.
	Final bool
}

// ErrRetry marks a voice note whose processing should be retried later (billing did not
// answer); every other outcome is final and reported as an event.
var ErrRetry = errors.New("assistant: retry later")

// TranscribeVoiceNote charges a voice note (operation id = note id), transcribes it and
// reports ai.transcription.completed, or refunds and reports ai.transcription.failed.
// It is idempotent: a note whose transcription already ended is skipped.
func (s *Service) TranscribeVoiceNote(ctx context.Context, n VoiceNote) error {
	done, err := s.cfg.Store.VoiceNoteFinished(ctx, n.UserID, n.NoteID)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRetry, err)
	}
	if done {
		return nil
	}
	result := VoiceNoteResult{NoteID: n.NoteID, UserID: n.UserID}
	entry := RequestLog{UserID: n.UserID, Kind: KindVoiceNote, Model: s.cfg.TranscriberName, OperationID: n.NoteID, At: s.cfg.Clock.Now()}
	fail := func(reason, outcome string) error {
		result.Reason, entry.Outcome = reason, outcome
		return s.finish(ctx, entry, result)
	}
	in := TranscribeInput{AudioURL: n.VoiceURL, DurationSeconds: n.DurationSeconds}
	if err := in.Validate(); err != nil {
		return fail("invalid voice note: "+describe(err), "invalid_input")
	}
	if s.cfg.Transcriber == nil {
		return fail("transcription is not configured: set "+s.cfg.MissingSpeechKey, OutcomeProviderError)
	}
	// The operation id is the note id (after a refund, the next attempt's id), so a
	// redelivered event never charges twice and a retry after a refund is charged again.
	cost := TranscriptionCost(n.DurationSeconds)
	res, err := s.reserve(ctx, n.UserID, n.NoteID, KindVoiceNote, cost)
	if err != nil {
		if apperr.CodeOf(err) == apperr.InsufficientCredits {
			return fail("insufficient credits", OutcomeInsufficientCredits)
		}
		if n.Final {
			// reserve gave back a consume billing may have applied unanswered.
			return fail("the credits service was unavailable; no credits were charged, please record the note again", OutcomeBillingUnavailable)
		}
		return fmt.Errorf("%w: charge voice note: %v", ErrRetry, err)
	}
	entry.OperationID = res.op
	start := s.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	defer cancel()
	tr, err := s.cfg.Transcriber.Transcribe(pctx, n.VoiceURL)
	entry.Latency = s.cfg.Clock.Now().Sub(start)
	if tr.Model != "" {
		entry.Model = tr.Model
	}
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "voice note transcription failed", "note_id", n.NoteID, "err", err)
		s.release(ctx, res, OutcomeProviderError)
		return fail("the transcription service failed", OutcomeProviderError)
	}
	result.OK, result.Text, result.Language, result.Confidence = true, tr.Text, tr.Language, tr.Confidence
	entry.Outcome, entry.Credits = OutcomeOK, cost
	return s.finish(ctx, entry, result)
}

// describe is a client-safe one-line account of a validation error.
func describe(err error) string {
	e, ok := apperr.As(err)
	if !ok {
		return "invalid input"
	}
	parts := make([]string, 0, len(e.Details))
	for _, d := range e.Details {
		parts = append(parts, d.Field+" "+d.Message)
	}
	if len(parts) == 0 {
		return e.Message
	}
	return strings.Join(parts, "; ")
}

func (s *Service) finish(ctx context.Context, entry RequestLog, r VoiceNoteResult) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	if err := s.cfg.Store.FinishVoiceNote(ctx, entry, r); err != nil {
		return fmt.Errorf("%w: record voice note: %v", ErrRetry, err)
	}
	return nil
}
