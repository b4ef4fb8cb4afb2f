// Package billingevents is the public contract of the events the billing service emits on
// the BILLING stream. Change a type only by adding a new one beside it.
package billingevents

import "time"

// Event types (also the JetStream subjects).
const (
	TypeCreditsGranted        = "billing.credits.granted"
	TypeCreditsConsumed       = "billing.credits.consumed"
	TypeCreditsRefunded       = "billing.credits.refunded"
	TypePaymentCaptured       = "billing.payment.captured"
	TypePaymentDeclined       = "billing.payment.declined"
	TypeSubscriptionActivated = "billing.subscription.activated" // auth sets tier pro
	TypeSubscriptionRenewed   = "billing.subscription.renewed"
	TypeSubscriptionCancelled = "billing.subscription.cancelled"
	TypeSubscriptionExpired   = "billing.subscription.expired" // auth sets tier free
)

// Source is the CloudEvents source of billing's events.
const Source = "perpetua/billing"

// Credits is the data of billing.credits.granted|consumed|refunded.
type Credits struct {
	UserID      string    `json:"user_id"`
	OperationID string    `json:"operation_id"` // consume/refund operation, or the grant's source ref
	Kind        string    `json:"kind"`         // daily, subscription, purchased, kickstart ("" for a consume across kinds)
	Amount      int       `json:"amount"`
	Reason      string    `json:"reason"` // e.g. ai.chat, kickstart, achievement:streak_7
	Balance     int       `json:"balance"`
	OccurredAt  time.Time `json:"occurred_at"`
}

// Payment is the data of billing.payment.captured|declined.
type Payment struct {
	UserID     string    `json:"user_id"`
	PaymentID  string    `json:"payment_id"`
	Kind       string    `json:"kind"`   // subscription, credits
	Amount     int       `json:"amount"` // money in minor units of Currency (999 = USD 9.99)
	Currency   string    `json:"currency"`
	OccurredAt time.Time `json:"occurred_at"`
}

// Subscription is the data of billing.subscription.*. Tier is the tier the user has after
// the change; Seq orders the changes of one user's subscription.
type Subscription struct {
	UserID           string     `json:"user_id"`
	SubscriptionID   string     `json:"subscription_id"`
	Tier             string     `json:"tier"`   // free, pro
	Status           string     `json:"status"` // active, past_due, grace, cancelled, expired
	CurrentPeriodEnd *time.Time `json:"current_period_end"`
	Seq              int64      `json:"seq"`
	OccurredAt       time.Time  `json:"occurred_at"`
}
