// Package catalog lists every event and request-reply endpoint that crosses a service
// boundary, with who produces and who consumes it, and renders the list as an AsyncAPI 3.0
// document whose payload schemas are reflected from the Go contract types, so the
// document cannot drift from the code. The gateway serves it at /asyncapi.json.
package catalog

import (
	"github.com/perpetua-flow/backend/libs/events/aievents"
	"github.com/perpetua-flow/backend/libs/events/authevents"
	"github.com/perpetua-flow/backend/libs/events/billingevents"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"
)

// Event is one JetStream event type.
type Event struct {
	Type        string // also the subject
	Stream      string
	Producer    string
	Consumers   []string
	Description string
	Payload     any // a zero value of the data type
}

// Endpoint is one NATS request-reply endpoint.
type Endpoint struct {
	Subject     string
	Service     string // who answers
	Callers     []string
	Description string
	Request     any
	Reply       any
}

// Events is every event of API.md §6.
var Events = []Event{
	{authevents.TypeUserCreated, "AUTH", "auth", []string{"billing"}, "A user signed in for the first time; billing grants the kickstart credits.", authevents.UserCreated{}},
	{authevents.TypeUserDeleted, "AUTH", "auth", []string{"tasks", "ai", "billing"}, "A user erased their account; every service erases that user's rows.", authevents.UserDeleted{}},
	{tasksevents.TypeTaskCreated, "TASKS", "tasks", nil, "A task was created (by the user, the AI or a recurring template).", tasksevents.Task{}},
	{tasksevents.TypeTaskUpdated, "TASKS", "tasks", nil, "A task changed; version orders the changes of one task.", tasksevents.Task{}},
	{tasksevents.TypeTaskCompleted, "TASKS", "tasks", nil, "A task was completed (manual, auto or force); exactly once per completion.", tasksevents.TaskCompleted{}},
	{tasksevents.TypeTaskDeleted, "TASKS", "tasks", nil, "A task was deleted (a tombstone keeps it recoverable for 7 days).", tasksevents.Task{}},
	{tasksevents.TypeTaskRecovered, "TASKS", "tasks", nil, "A deleted task was recovered with its original id and version 1.", tasksevents.Task{}},
	{tasksevents.TypeAchievementUnlocked, "TASKS", "tasks", []string{"billing"}, "An achievement was unlocked; billing adds daily-credit perks.", tasksevents.AchievementUnlocked{}},
	{tasksevents.TypeReminderFired, "TASKS", "tasks", nil, "A reminder fired and its notification was created.", tasksevents.ReminderFired{}},
	{tasksevents.TypeNoteVoiceCreated, "TASKS", "tasks", []string{"ai"}, "A voice note was created; ai transcribes it.", tasksevents.NoteVoiceCreated{}},
	{aievents.TypeTranscriptionCompleted, "AI", "ai", []string{"tasks"}, "A voice note's transcription is ready; tasks stores it on the note.", aievents.Transcription{}},
	{aievents.TypeTranscriptionFailed, "AI", "ai", []string{"tasks"}, "A voice note could not be transcribed (credits refunded); tasks marks it failed.", aievents.Transcription{}},
	{aievents.TypeNoteConverted, "AI", "ai", []string{"tasks"}, "A note was turned into a task suggestion; tasks counts it toward notes_10.", aievents.NoteConverted{}},
	{billingevents.TypeCreditsGranted, "BILLING", "billing", []string{"tasks"}, "Credits were granted (kickstart, daily, subscription, purchase, perk).", billingevents.Credits{}},
	{billingevents.TypeCreditsConsumed, "BILLING", "billing", []string{"tasks"}, "Credits were consumed by an operation.", billingevents.Credits{}},
	{billingevents.TypeCreditsRefunded, "BILLING", "billing", []string{"tasks"}, "An operation's credits were given back.", billingevents.Credits{}},
	{billingevents.TypePaymentCaptured, "BILLING", "billing", nil, "A Checkout.com payment was captured.", billingevents.Payment{}},
	{billingevents.TypePaymentDeclined, "BILLING", "billing", nil, "A Checkout.com payment was declined.", billingevents.Payment{}},
	{billingevents.TypeSubscriptionActivated, "BILLING", "billing", []string{"auth", "tasks"}, "Pro started; auth sets the user's tier.", billingevents.Subscription{}},
	{billingevents.TypeSubscriptionRenewed, "BILLING", "billing", []string{"auth", "tasks"}, "Pro renewed for another period.", billingevents.Subscription{}},
	{billingevents.TypeSubscriptionCancelled, "BILLING", "billing", []string{"auth", "tasks"}, "Pro was cancelled; it stays until the period ends.", billingevents.Subscription{}},
	{billingevents.TypeSubscriptionExpired, "BILLING", "billing", []string{"auth", "tasks"}, "Pro ended; auth sets the tier back to free.", billingevents.Subscription{}},
}

// Endpoints is every request-reply endpoint between services.
var Endpoints = []Endpoint{
	{billingrpc.SubjectConsume, "billing", []string{"ai", "tasks"}, "Debit credits once per operation id (daily → subscription → purchased → kickstart).", billingrpc.ConsumeRequest{}, billingrpc.ConsumeResponse{}},
	{billingrpc.SubjectRefund, "billing", []string{"ai", "tasks"}, "Give back exactly what an operation took.", billingrpc.RefundRequest{}, billingrpc.RefundResponse{}},
	{billingrpc.SubjectBalance, "billing", []string{"ai"}, "A user's balance per kind.", billingrpc.BalanceRequest{}, billingrpc.Balance{}},
	{tasksrpc.SubjectContext, "tasks", []string{"ai"}, "A user's open tasks (or one task) for the AI prompt.", tasksrpc.ContextRequest{}, tasksrpc.ContextResponse{}},
	{tasksrpc.SubjectApplyAction, "tasks", []string{"ai"}, "Execute a confirmed suggested action on behalf of the user (activity source ai).", tasksrpc.ApplyActionRequest{}, tasksrpc.ApplyActionResponse{}},
	{tasksrpc.SubjectNote, "tasks", []string{"ai"}, "One of the user's notes, for note → task conversion.", tasksrpc.NoteRequest{}, tasksrpc.NoteResponse{}},
}

// ByType is the catalogue entry of an event type.
func ByType(typ string) (Event, bool) {
	for _, e := range Events {
		if e.Type == typ {
			return e, true
		}
	}
	return Event{}, false
}
