package assistant

import (
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/perpetua-flow/backend/libs/apperr"
)

// ChatInput is a chat request (API.md §4).
type ChatInput struct {
	Message      string
	IncludeTasks bool
	TaskLimit    int
	// TaskID is the optional X-Task-Id: the task the conversation is about, which the
	// per (session, task) counter counts.
	TaskID string
}

// Validate checks the bounds of API.md §4.
func (in ChatInput) Validate() error {
	var v apperr.Validator
	n := utf8.RuneCountInString(in.Message)
	v.Check(strings.TrimSpace(in.Message) != "", "message", "must not be empty")
	v.Check(n <= MaxMessageChars, "message", "must be at most 2000 characters")
	v.Check(in.TaskLimit >= MinTaskLimit && in.TaskLimit <= MaxTaskLimit, "context.task_limit", "must be 1–50")
	v.Check(in.TaskID == "" || validUUID(in.TaskID), "X-Task-Id", "must be a task id")
	return v.Err()
}

// TranscribeInput is a transcription request.
type TranscribeInput struct {
	AudioURL        string
	DurationSeconds int
}

// Validate checks the URL (absolute https, at most 2048 characters) and the duration
// (1–300 s; over 300 is AUDIO_DURATION_EXCEEDED).
func (in TranscribeInput) Validate() error {
	if err := ValidateAudioURL(in.AudioURL); err != nil {
		return apperr.Invalid(apperr.Field("audio_url", err.Error()))
	}
	if in.DurationSeconds > MaxAudioSeconds {
		return apperr.New(apperr.AudioDurationExceeded, "audio may be at most 300 seconds long",
			apperr.Field("duration_seconds", "must be at most 300"))
	}
	if in.DurationSeconds < 1 {
		return apperr.Invalid(apperr.Field("duration_seconds", "must be 1–300"))
	}
	return nil
}

type urlError string

func (e urlError) Error() string { return string(e) }

// ValidateAudioURL accepts an absolute https URL of at most 2048 characters. Our services
// never fetch it; the transcription provider does.
func ValidateAudioURL(s string) error {
	if s == "" {
		return urlError("is required")
	}
	if len(s) > MaxAudioURLChars {
		return urlError("must be at most 2048 characters")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return urlError("must be an absolute https URL")
	}
	return nil
}
