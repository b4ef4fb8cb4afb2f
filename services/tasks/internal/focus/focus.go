// Package focus owns focus sessions (API.md §3 "Focus"): one open session per user, time
// measured by the server from start to stop, and a session left open closed after
// MaxDuration by a job, crediting exactly MaxDuration. What a focus session means for
// achievements (a focus completion) is package achievement's IsFocusCompletion.
package focus

import (
	"time"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
)

// MaxDuration is how long a session may stay open.
const MaxDuration = achievement.FocusSessionMaxDuration

// EndedBy says how a session ended.
type EndedBy string

// Ways a session ends.
const (
	ByUser EndedBy = "user" // POST /focus/stop
	ByAuto EndedBy = "auto" // the job, MaxDuration after the start
)

// Session is one focus session on a task.
type Session struct {
	ID             string
	UserID         string
	TaskID         string
	StartedAt      time.Time
	EndedAt        *time.Time
	ElapsedSeconds *int
	EndedBy        EndedBy // "" while open
}

// Open reports whether s has not ended.
func (s Session) Open() bool { return s.EndedAt == nil }

// AutoCloseAt is when the job closes s if it is still open.
func (s Session) AutoCloseAt() time.Time { return s.StartedAt.Add(MaxDuration) }

// Stop is s ended at now by by: the elapsed seconds never exceed MaxDuration (a stop
// after the deadline, before the job ran, credits the same as the job would) and never
// go negative. It returns the seconds to add to the task.
func Stop(s Session, now time.Time, by EndedBy) (Session, int) {
	end := now
	if limit := s.AutoCloseAt(); end.After(limit) {
		end = limit
	}
	secs := achievement.FocusElapsed(s.StartedAt, end)
	s.EndedAt, s.ElapsedSeconds, s.EndedBy = &end, &secs, by
	return s, secs
}
