// Package billingrpc is the request-reply contract of the billing service (NATS micro,
// service "billing"). Errors come back as apperr codes: INSUFFICIENT_CREDITS (with the
// balance in details), VALIDATION_ERROR, NOT_FOUND.
package billingrpc

// Subjects.
const (
	SubjectConsume = "svc.billing.credits.consume"
	SubjectRefund  = "svc.billing.credits.refund"
	SubjectBalance = "svc.billing.credits.balance"
)

// ConsumeRequest debits Amount credits once per OperationID: a retry with the same id
// returns the first outcome and charges nothing more.
type ConsumeRequest struct {
	UserID      string `json:"user_id"`
	OperationID string `json:"operation_id"`
	Amount      int    `json:"amount"`
	Reason      string `json:"reason"` // ai.chat, ai.generate_subtasks, ai.transcribe, ai.voice_note, ai.note_convert
}

// ConsumeResponse is the balance after the debit.
type ConsumeResponse struct {
	OperationID string  `json:"operation_id"`
	Charged     int     `json:"charged"`
	Balance     Balance `json:"balance"`
}

// RefundRequest gives back what OperationID took (idempotent; unknown id is NOT_FOUND).
type RefundRequest struct {
	UserID      string `json:"user_id"`
	OperationID string `json:"operation_id"`
	Reason      string `json:"reason"`
}

// RefundResponse is the balance after the refund.
type RefundResponse struct {
	OperationID string  `json:"operation_id"`
	Refunded    int     `json:"refunded"`
	Balance     Balance `json:"balance"`
}

// BalanceRequest asks for a user's balance.
type BalanceRequest struct {
	UserID string `json:"user_id"`
}

// Balance is the per-kind balance of API.md §5.
type Balance struct {
	Daily         int    `json:"daily"`
	Subscription  int    `json:"subscription"`
	Purchased     int    `json:"purchased"`
	Kickstart     int    `json:"kickstart"`
	Total         int    `json:"total"`
	DailyResetsAt string `json:"daily_resets_at"` // RFC 3339 UTC
}
