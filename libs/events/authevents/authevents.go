// Package authevents is the public contract of the events the auth service emits on the
// AUTH stream. Change a type only by adding a new one beside it.
package authevents

import "time"

// Event types (also the JetStream subjects).
const (
	// TypeUserCreated: emitted by auth on a user's first sign-in; billing grants the
	// kickstart credits.
	TypeUserCreated = "auth.user.created"
	// TypeUserDeleted: emitted by auth on DELETE /users/me; every service erases the user.
	TypeUserDeleted = "auth.user.deleted"
)

// Source is the CloudEvents source of auth's events.
const Source = "perpetua/auth"

// UserCreated is the data of auth.user.created.
type UserCreated struct {
	UserID    string    `json:"user_id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// UserDeleted is the data of auth.user.deleted.
type UserDeleted struct {
	UserID    string    `json:"user_id"`
	DeletedAt time.Time `json:"deleted_at"`
}
