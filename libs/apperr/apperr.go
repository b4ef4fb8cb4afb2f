// Package apperr is the one error vocabulary of Perpetua Flow: the codes of API.md §9,
// carried by a typed error that every layer can return and that the HTTP and NATS edges
// map to their wire form in exactly one place each.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is one of the error codes of API.md §9.
type Code string

// The codes of API.md §9.
const (
	Validation             Code = "VALIDATION_ERROR"
	IdempotencyKeyRequired Code = "IDEMPOTENCY_KEY_REQUIRED"
	AudioDurationExceeded  Code = "AUDIO_DURATION_EXCEEDED"
	InvalidAction          Code = "INVALID_ACTION"

	Unauthorized        Code = "UNAUTHORIZED"
	InvalidToken        Code = "INVALID_TOKEN"
	TokenExpired        Code = "TOKEN_EXPIRED"
	GoogleAuthFailed    Code = "GOOGLE_AUTH_FAILED"
	InvalidRefreshToken Code = "INVALID_REFRESH_TOKEN"
	RefreshTokenReused  Code = "REFRESH_TOKEN_REUSED"
	InvalidSignature    Code = "INVALID_SIGNATURE"

	InsufficientCredits Code = "INSUFFICIENT_CREDITS"
	ProTierRequired     Code = "PRO_TIER_REQUIRED"

	NotFound     Code = "NOT_FOUND"
	TaskNotFound Code = "TASK_NOT_FOUND"

	Conflict              Code = "CONFLICT"
	LimitExceeded         Code = "LIMIT_EXCEEDED"
	Archived              Code = "ARCHIVED"
	FocusSessionActive    Code = "FOCUS_SESSION_ACTIVE"
	AlreadySubscribed     Code = "ALREADY_SUBSCRIBED"
	IdempotencyInProgress Code = "IDEMPOTENCY_IN_PROGRESS"

	PayloadTooLarge      Code = "PAYLOAD_TOO_LARGE"
	UnsupportedMediaType Code = "UNSUPPORTED_MEDIA_TYPE"
	MethodNotAllowed     Code = "METHOD_NOT_ALLOWED"

	IdempotencyKeyReused Code = "IDEMPOTENCY_KEY_REUSED"

	RateLimitExceeded  Code = "RATE_LIMIT_EXCEEDED"
	AITaskLimitReached Code = "AI_TASK_LIMIT_REACHED"

	Internal                        Code = "INTERNAL_ERROR"
	BadGateway                      Code = "BAD_GATEWAY"
	ServiceUnavailable              Code = "SERVICE_UNAVAILABLE"
	AIServiceUnavailable            Code = "AI_SERVICE_UNAVAILABLE"
	TranscriptionServiceUnavailable Code = "TRANSCRIPTION_SERVICE_UNAVAILABLE"
)

// statusByCode is the single table from code to HTTP status.
var statusByCode = map[Code]int{
	Validation:             http.StatusBadRequest,
	IdempotencyKeyRequired: http.StatusBadRequest,
	AudioDurationExceeded:  http.StatusBadRequest,
	InvalidAction:          http.StatusBadRequest,

	Unauthorized:        http.StatusUnauthorized,
	InvalidToken:        http.StatusUnauthorized,
	TokenExpired:        http.StatusUnauthorized,
	GoogleAuthFailed:    http.StatusUnauthorized,
	InvalidRefreshToken: http.StatusUnauthorized,
	RefreshTokenReused:  http.StatusUnauthorized,
	InvalidSignature:    http.StatusUnauthorized,

	InsufficientCredits: http.StatusPaymentRequired,
	ProTierRequired:     http.StatusForbidden,

	NotFound:     http.StatusNotFound,
	TaskNotFound: http.StatusNotFound,

	MethodNotAllowed: http.StatusMethodNotAllowed,

	Conflict:              http.StatusConflict,
	LimitExceeded:         http.StatusConflict,
	Archived:              http.StatusConflict,
	FocusSessionActive:    http.StatusConflict,
	AlreadySubscribed:     http.StatusConflict,
	IdempotencyInProgress: http.StatusConflict,

	PayloadTooLarge:      http.StatusRequestEntityTooLarge,
	UnsupportedMediaType: http.StatusUnsupportedMediaType,

	IdempotencyKeyReused: http.StatusUnprocessableEntity,

	RateLimitExceeded:  http.StatusTooManyRequests,
	AITaskLimitReached: http.StatusTooManyRequests,

	Internal:                        http.StatusInternalServerError,
	BadGateway:                      http.StatusBadGateway,
	ServiceUnavailable:              http.StatusServiceUnavailable,
	AIServiceUnavailable:            http.StatusServiceUnavailable,
	TranscriptionServiceUnavailable: http.StatusServiceUnavailable,
}

// Status is the HTTP status of a code; unknown codes are 500.
func (c Code) Status() int {
	if s, ok := statusByCode[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Known reports whether c is one of the codes above.
func (c Code) Known() bool { _, ok := statusByCode[c]; return ok }

// Detail names one bad field (or another fact, such as the current version).
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error a client may see: a code, a safe message and details.
// Anything else that reaches an edge is logged and answered as INTERNAL_ERROR.
type Error struct {
	Code    Code
	Message string
	Details []Detail
	// Headers are added to an HTTP answer (Retry-After, for example).
	Headers map[string]string
	// Err is the cause; it is logged, never sent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, apperr.New(code, "")) true for any error with that code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// New is an error with a code and a message the client may read.
func New(code Code, message string, details ...Detail) *Error {
	return &Error{Code: code, Message: message, Details: details}
}

// Wrap is New with a cause that is logged but not sent.
func Wrap(err error, code Code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Invalid is a VALIDATION_ERROR with one detail per field.
func Invalid(details ...Detail) *Error {
	return &Error{Code: Validation, Message: "the request is not valid", Details: details}
}

// Field is a shorthand for one Detail.
func Field(field, message string) Detail { return Detail{Field: field, Message: message} }

// As returns the *Error in err's chain, if there is one.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CodeOf is the code of err, or INTERNAL_ERROR when err carries none.
func CodeOf(err error) Code {
	if e, ok := As(err); ok {
		return e.Code
	}
	return Internal
}

// Validator gathers field errors so a handler can report every bad field at once.
type Validator struct{ details []Detail }

// Check records message for field when ok is false.
func (v *Validator) Check(ok bool, field, message string) {
	if !ok {
		v.details = append(v.details, Detail{Field: field, Message: message})
	}
}

// Add records a failure unconditionally.
func (v *Validator) Add(field, message string) { v.Check(false, field, message) }

// Err is nil when every check passed, else a VALIDATION_ERROR with all details.
func (v *Validator) Err() error {
	if len(v.details) == 0 {
		return nil
	}
	return Invalid(v.details...)
}
