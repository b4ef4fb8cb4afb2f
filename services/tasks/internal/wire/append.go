package wire

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// AppendTask appends the JSON of FromTask(t) to b, byte for byte what encoding/json
// makes of it (TestAppendTaskMatchesMarshal holds the two together), without reflection
// and without a string per time. GET /tasks encodes 25 of these per request.
func AppendTask(b []byte, t task.Task) []byte {
	return append(appendTaskFields(b, t), '}')
}

// AppendFullDetail appends the JSON of FromFullDetail(t, subs, rems) (GET /tasks/{id}),
// byte for byte what encoding/json makes of it.
func AppendFullDetail(b []byte, t task.Task, subs []task.Subtask, rems []reminder.Reminder) []byte {
	b = appendTaskFields(b, t)
	b = append(b, `,"subtasks":[`...)
	for i, st := range subs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendSubtask(b, st)
	}
	b = append(b, `],"reminders":[`...)
	for i, r := range rems {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendReminder(b, r)
	}
	return append(b, "]}"...)
}

func appendSubtask(b []byte, st task.Subtask) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, st.ID)
	b = append(b, `,"task_id":`...)
	b = appendString(b, st.TaskID)
	b = append(b, `,"title":`...)
	b = appendString(b, st.Title)
	b = append(b, `,"completed":`...)
	b = strconv.AppendBool(b, st.Completed)
	b = append(b, `,"completed_at":`...)
	b = appendTimePtr(b, st.CompletedAt)
	b = append(b, `,"order_index":`...)
	b = strconv.AppendInt(b, int64(st.OrderIndex), 10)
	b = append(b, `,"source":`...)
	b = appendString(b, string(st.Source))
	b = append(b, `,"created_at":`...)
	b = appendTime(b, st.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, st.UpdatedAt)
	return append(b, '}')
}

func appendReminder(b []byte, r reminder.Reminder) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"task_id":`...)
	b = appendString(b, r.TaskID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, r.UserID)
	b = append(b, `,"type":`...)
	b = appendString(b, string(r.Type))
	b = append(b, `,"offset_minutes":`...)
	b = appendIntPtr(b, r.OffsetMinutes)
	b = append(b, `,"scheduled_at":`...)
	b = appendTimePtr(b, r.ScheduledAt)
	b = append(b, `,"method":`...)
	b = appendString(b, string(r.Method))
	b = append(b, `,"fired":`...)
	b = strconv.AppendBool(b, r.Fired)
	b = append(b, `,"fired_at":`...)
	b = appendTimePtr(b, r.FiredAt)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, r.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, r.UpdatedAt)
	return append(b, '}')
}

// appendTaskFields is AppendTask without the closing brace, which TaskDetail's fields
// follow.
func appendTaskFields(b []byte, t task.Task) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, t.ID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, t.UserID)
	b = append(b, `,"title":`...)
	b = appendString(b, t.Title)
	b = append(b, `,"description":`...)
	b = appendString(b, t.Description)
	b = append(b, `,"priority":`...)
	b = appendString(b, string(t.Priority))
	b = append(b, `,"due_date":`...)
	b = appendTimePtr(b, t.DueDate)
	b = append(b, `,"estimated_duration":`...)
	b = appendIntPtr(b, t.EstimatedDuration)
	b = append(b, `,"focus_time_seconds":`...)
	b = strconv.AppendInt(b, int64(t.FocusTimeSeconds), 10)
	b = append(b, `,"completed":`...)
	b = strconv.AppendBool(b, t.Completed)
	b = append(b, `,"completed_at":`...)
	b = appendTimePtr(b, t.CompletedAt)
	b = append(b, `,"completed_by":`...)
	b = appendString(b, string(t.CompletedBy))
	b = append(b, `,"hidden":`...)
	b = strconv.AppendBool(b, t.Hidden)
	b = append(b, `,"archived":`...)
	b = strconv.AppendBool(b, t.Archived)
	b = append(b, `,"template_id":`...)
	if t.TemplateID == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *t.TemplateID)
	}
	b = append(b, `,"subtask_count":`...)
	b = strconv.AppendInt(b, int64(t.SubtaskCount), 10)
	b = append(b, `,"subtask_completed_count":`...)
	b = strconv.AppendInt(b, int64(t.SubtaskCompletedCount), 10)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(t.Version), 10)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, t.CreatedAt)
	b = append(b, `,"updated_at":`...)
	return appendTime(b, t.UpdatedAt)
}

// appendTime is Time(t) as a JSON string (no character of it needs escaping).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendTimePtr(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	return appendTime(b, *t)
}

func appendIntPtr(b []byte, n *int) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, int64(*n), 10)
}

// appendString appends s as a JSON string. Strings that encoding/json copies verbatim
// (printable ASCII other than " \ < > &, and valid UTF-8 other than U+2028 and U+2029)
// are copied here; any other is left to encoding/json, so its escaping stays the only
// one.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !verbatimASCII[c] {
				return appendMarshaled(b, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendMarshaled(b, s)
		}
		i += size
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// verbatimASCII is the ASCII bytes encoding/json copies into a string as they are.
var verbatimASCII = func() (set [utf8.RuneSelf]bool) {
	for c := range set {
		set[c] = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return set
}()

func appendMarshaled(b []byte, s string) []byte {
	enc, err := json.Marshal(s)
	if err != nil { // a string always marshals
		panic(err)
	}
	return append(b, enc...)
}
