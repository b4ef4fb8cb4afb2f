package httpapi

import (
	"bytes"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/httpx"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
	"github.com/perpetua-flow/backend/services/tasks/internal/focus"
	"github.com/perpetua-flow/backend/services/tasks/internal/ical"
	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
	"github.com/perpetua-flow/backend/services/tasks/internal/wire"
)

// scheduleRoutes are the reminders, templates, focus, achievements and calendar routes
// that need a token.
func (a *API) scheduleRoutes(r chi.Router) {
	r.Post("/tasks/{id}/reminders", a.createReminder)
	r.Get("/tasks/{id}/reminders", a.listReminders)
	r.Post("/reminders", a.createReminder)
	r.Patch("/reminders/{id}", a.updateReminder)
	r.Put("/reminders/{id}", a.updateReminder)
	r.Delete("/reminders/{id}", a.deleteReminder)

	r.Get("/templates", a.listTemplates)
	r.Post("/templates", a.createTemplate)
	r.Get("/templates/{id}", a.getTemplate)
	r.Patch("/templates/{id}", a.updateTemplate)
	r.Put("/templates/{id}", a.updateTemplate)
	r.Delete("/templates/{id}", a.deleteTemplate)
	r.Post("/templates/{id}/instantiate", a.instantiateTemplate)

	r.Post("/focus/start", a.startFocus)
	r.Post("/focus/stop", a.stopFocus)
	r.Get("/focus/active", a.activeFocus)

	r.Get("/achievements", a.listAchievements)
	r.Get("/achievements/me", a.myAchievements)

	r.Post("/calendar/token", a.issueCalendarToken)
	r.Delete("/calendar/token", a.revokeCalendarToken)
}

type reminderRequest struct {
	TaskID        httpx.Optional[string] `json:"task_id"`
	Type          httpx.Optional[string] `json:"type"`
	OffsetMinutes httpx.Optional[int]    `json:"offset_minutes"`
	ScheduledAt   httpx.Optional[string] `json:"scheduled_at"`
	Method        httpx.Optional[string] `json:"method"`
}

func (req reminderRequest) patch(v *apperr.Validator) store.ReminderPatch {
	var p store.ReminderPatch
	if s := wire.NotNull(v, "type", req.Type); s != nil {
		t := reminder.Type(*s)
		p.Type = &t
	}
	if req.OffsetMinutes.Set && !req.OffsetMinutes.Null {
		p.OffsetMinutes = &req.OffsetMinutes.Value
	}
	if req.ScheduledAt.Set && !req.ScheduledAt.Null {
		p.ScheduledAt = parseTime(v, "scheduled_at", req.ScheduledAt.Value)
	}
	if s := wire.NotNull(v, "method", req.Method); s != nil {
		m := reminder.Method(*s)
		p.Method = &m
	}
	return p
}

func (a *API) createReminder(w http.ResponseWriter, r *http.Request) {
	var req reminderRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	taskID := chi.URLParam(r, "id")
	if taskID == "" {
		v.Check(req.TaskID.Has(), "task_id", "is required")
		taskID = req.TaskID.Value
	}
	v.Check(req.Type.Has(), "type", "is required")
	p := req.patch(&v)
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	in := reminder.Input{OffsetMinutes: p.OffsetMinutes, ScheduledAt: p.ScheduledAt}
	if p.Type != nil {
		in.Type = *p.Type
	}
	if p.Method != nil {
		in.Method = *p.Method
	}
	rem, err := a.store.CreateReminder(r.Context(), actor(r), taskID, in)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, wire.FromReminder(rem))
}

func (a *API) listReminders(w http.ResponseWriter, r *http.Request) {
	rs, err := a.store.ListReminders(r.Context(), actor(r).UserID, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// At most task.MaxRemindersPerTask: one page always holds them.
	out := wire.FromReminders(rs)
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, httpx.Page{Offset: 0, Limit: task.MaxRemindersPerTask}, len(out)))
}

func (a *API) updateReminder(w http.ResponseWriter, r *http.Request) {
	var req reminderRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	v.Check(!req.TaskID.Set, "task_id", "a reminder cannot move to another task")
	p := req.patch(&v)
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	rem, err := a.store.UpdateReminder(r.Context(), actor(r), chi.URLParam(r, "id"), p)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromReminder(rem))
}

// deletedID is the answer of a DELETE without a tombstone.
type deletedID struct {
	DeletedID string `json:"deleted_id"`
}

func (a *API) deleteReminder(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := a.store.DeleteReminder(r.Context(), actor(r), id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, deletedID{DeletedID: id})
}

type templateRequest struct {
	Title             httpx.Optional[string]   `json:"title"`
	Description       httpx.Optional[string]   `json:"description"`
	Priority          httpx.Optional[string]   `json:"priority"`
	EstimatedDuration httpx.Optional[int]      `json:"estimated_duration"`
	RRule             httpx.Optional[string]   `json:"rrule"`
	Subtasks          httpx.Optional[[]string] `json:"subtasks"`
	Active            httpx.Optional[bool]     `json:"active"`
	Version           httpx.Optional[int]      `json:"version"`
}

func (req templateRequest) patch(v *apperr.Validator) recurring.Patch {
	p := recurring.Patch{
		Title:  wire.NotNull(v, "title", req.Title),
		RRule:  wire.NotNull(v, "rrule", req.RRule),
		Active: wire.NotNull(v, "active", req.Active),
	}
	if req.Version.Has() {
		p.Version = &req.Version.Value
	}
	if s := wire.NotNull(v, "priority", req.Priority); s != nil {
		prio := task.Priority(*s)
		p.Priority = &prio
	}
	if req.Description.Set {
		p.Description = task.Clear[string]()
		if !req.Description.Null {
			p.Description = task.SetTo(req.Description.Value)
		}
	}
	if req.EstimatedDuration.Set {
		p.EstimatedDuration = task.Clear[int]()
		if !req.EstimatedDuration.Null {
			p.EstimatedDuration = task.SetTo(req.EstimatedDuration.Value)
		}
	}
	if req.Subtasks.Set {
		subs := []string{}
		if !req.Subtasks.Null {
			subs = req.Subtasks.Value
		}
		p.Subtasks = &subs
	}
	return p
}

func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) {
	hp, sp, err := page(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ts, total, err := a.store.ListTemplates(r.Context(), actor(r).UserID, sp)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := make([]wire.Template, 0, len(ts))
	for _, t := range ts {
		out = append(out, wire.FromTemplate(t))
	}
	httpx.WriteJSON(w, http.StatusOK, httpx.NewList(out, hp, total))
}

func (a *API) createTemplate(w http.ResponseWriter, r *http.Request) {
	var req templateRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	v.Check(req.Title.Has(), "title", "is required")
	v.Check(req.RRule.Has(), "rrule", "is required")
	v.Check(!req.Version.Set, "version", "is set by the server")
	p := req.patch(&v)
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	in := recurring.Input{Title: *p.Title, RRule: *p.RRule}
	if p.Description.Value != nil {
		in.Description = *p.Description.Value
	}
	if p.Priority != nil {
		in.Priority = *p.Priority
	}
	in.EstimatedDuration = p.EstimatedDuration.Value
	if p.Subtasks != nil {
		in.Subtasks = *p.Subtasks
	}
	a2 := actor(r)
	t, err := a.store.CreateTemplate(r.Context(), a2, in)
	if err == nil && p.Active != nil && !*p.Active {
		t, err = a.store.UpdateTemplate(r.Context(), a2, t.ID, recurring.Patch{Active: p.Active})
	}
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, wire.FromTemplate(t))
}

func (a *API) getTemplate(w http.ResponseWriter, r *http.Request) {
	t, err := a.store.GetTemplate(r.Context(), actor(r).UserID, chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromTemplate(t))
}

func (a *API) updateTemplate(w http.ResponseWriter, r *http.Request) {
	var req templateRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var v apperr.Validator
	p := req.patch(&v)
	if err := v.Err(); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	t, err := a.store.UpdateTemplate(r.Context(), actor(r), chi.URLParam(r, "id"), p)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, wire.FromTemplate(t))
}

func (a *API) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := a.store.DeleteTemplate(r.Context(), actor(r), id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, deletedID{DeletedID: id})
}

func (a *API) instantiateTemplate(w http.ResponseWriter, r *http.Request) {
	d, _, err := a.store.Instantiate(r.Context(), actor(r), chi.URLParam(r, "id"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, wire.FromFullDetail(d.Task, d.Subtasks, d.Reminders))
}

type focusStartRequest struct {
	TaskID *string `json:"task_id"`
}

// focusWire is s with, while it is open, the time so far.
func (a *API) focusWire(s focus.Session) wire.FocusSession {
	elapsed := 0
	if s.Open() {
		elapsed = achievement.FocusElapsed(s.StartedAt, a.store.Now())
	}
	return wire.FromFocus(s, elapsed)
}

func (a *API) startFocus(w http.ResponseWriter, r *http.Request) {
	var req focusStartRequest
	if err := httpx.Decode(r, &req); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if req.TaskID == nil {
		httpx.WriteError(w, r, apperr.Invalid(apperr.Field("task_id", "is required")))
		return
	}
	s, err := a.store.StartFocus(r.Context(), actor(r), *req.TaskID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusCreated, a.focusWire(s))
}

// focusStopped is the stopped session with the task it credited.
type focusStopped struct {
	wire.FocusSession
	Task wire.Task `json:"task"`
}

func (a *API) stopFocus(w http.ResponseWriter, r *http.Request) {
	s, t, err := a.store.StopFocus(r.Context(), actor(r))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, focusStopped{FocusSession: a.focusWire(s), Task: wire.FromTask(t)})
}

func (a *API) activeFocus(w http.ResponseWriter, r *http.Request) {
	s, ok, err := a.store.ActiveFocus(r.Context(), actor(r).UserID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if !ok {
		httpx.WriteData(w, http.StatusOK, nil)
		return
	}
	httpx.WriteData(w, http.StatusOK, a.focusWire(s))
}

func (a *API) listAchievements(w http.ResponseWriter, r *http.Request) {
	cat := achievement.Catalogue()
	out := make([]wire.Achievement, 0, len(cat))
	for _, a := range cat {
		out = append(out, wire.FromAchievement(a))
	}
	httpx.WriteData(w, http.StatusOK, out)
}

func (a *API) myAchievements(w http.ResponseWriter, r *http.Request) {
	act := actor(r)
	st, err := a.store.Achievements(r.Context(), act.UserID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ids := []string{}
	for _, id := range st.Unlocked.IDs() {
		ids = append(ids, string(id))
	}
	lim := task.EffectiveLimits(act.Tier, ids)
	out := wire.AchievementsMe{
		Stats: wire.AchievementStats{LifetimeTasksCompleted: st.Stats.LifetimeCompleted, CurrentStreak: st.Stats.CurrentStreak,
			LongestStreak: st.Stats.LongestStreak, FocusCompletions: st.Stats.FocusCompletions, NotesConverted: st.Stats.NotesConverted},
		Unlocked: ids,
		EffectiveLimits: wire.EffectiveLimits{MaxTasks: lim.MaxTasks, MaxSubtasks: lim.MaxSubtasks, MaxNotes: lim.MaxNotes,
			DailyAICredits: achievement.BaseDailyAICredits + achievement.SumPerks(st.Unlocked).DailyAICredits},
	}
	for _, p := range achievement.ProgressOf(st.Stats, st.Unlocked) {
		line := wire.AchievementProgress{ID: string(p.ID), Name: p.Name, Current: p.Current, Threshold: p.Threshold, Unlocked: p.Unlocked}
		if at, ok := st.UnlockedAt[p.ID]; ok {
			line.UnlockedAt = wire.TimePtr(&at)
		}
		out.Progress = append(out.Progress, line)
	}
	httpx.WriteData(w, http.StatusOK, out)
}

type calendarToken struct {
	Token     string `json:"token"`
	URL       string `json:"url"`
	CreatedAt string `json:"created_at"`
}

func (a *API) issueCalendarToken(w http.ResponseWriter, r *http.Request) {
	tok, at, err := a.store.IssueCalendarToken(r.Context(), actor(r).UserID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	// The path as the gateway serves it; the client prefixes its own origin.
	httpx.WriteData(w, http.StatusCreated, calendarToken{Token: tok, URL: "/api/v1/calendar.ics?token=" + tok, CreatedAt: wire.Time(at)})
}

func (a *API) revokeCalendarToken(w http.ResponseWriter, r *http.Request) {
	userID := actor(r).UserID
	if err := a.store.RevokeCalendarToken(r.Context(), userID); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteData(w, http.StatusOK, deletedID{DeletedID: userID})
}

// Calendar feed numbers.
const (
	calendarProdID  = "-//Perpetua Flow//Tasks//EN"
	calendarName    = "Perpetua Flow"
	calendarRefresh = time.Hour
)

// calendarFeed is GET /calendar.ics?token=: no access token, the secret is the credential.
// An unknown or revoked token is 404 (it names no resource the caller may know of).
func (a *API) calendarFeed(w http.ResponseWriter, r *http.Request) {
	userID, err := a.store.CalendarUser(r.Context(), r.URL.Query().Get("token"))
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ts, tpls, err := a.store.CalendarData(r.Context(), userID)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	now := a.store.Now()
	cal := ical.Calendar{ProdID: calendarProdID, Name: calendarName, Refresh: calendarRefresh}
	for _, t := range ts {
		c := ical.Component{Kind: ical.Todo, UID: t.ID + "@perpetua", Stamp: now, Created: t.CreatedAt, LastModified: t.UpdatedAt,
			Due: t.DueDate, Summary: t.Title, Description: t.Description, Completed: t.CompletedAt, Priority: icalPriority(t.Priority)}
		if !t.Completed {
			c.Completed = nil
		}
		cal.Components = append(cal.Components, c)
	}
	for _, tpl := range tpls {
		if tpl.NextDue == nil {
			continue
		}
		// The series starts at the next instance to be made: earlier ones are tasks above.
		start := *tpl.NextDue
		cal.Components = append(cal.Components, ical.Component{Kind: ical.Todo, UID: "template-" + tpl.ID + "@perpetua", Stamp: now,
			Created: tpl.CreatedAt, LastModified: tpl.UpdatedAt, Start: &start, Summary: tpl.Title, Description: tpl.Description,
			Priority: icalPriority(tpl.Priority), RRule: seriesRule(tpl)})
	}
	var b bytes.Buffer
	if err := ical.Encode(&b, cal); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
}

// seriesRule is the template's rule for a series that starts at next_due. COUNT counts
// from the rule's own start, so a counted rule is written with the occurrences left.
func seriesRule(t recurring.Template) string {
	rule, err := t.Rule()
	if err != nil || rule.Count == 0 || t.NextDue == nil {
		return t.RRule
	}
	left := 0
	for at, ok := *t.NextDue, true; ok && left <= rule.Count; at, ok = rule.Next(at) {
		left++
	}
	rule.Count = left
	return rule.String()
}

func icalPriority(p task.Priority) int {
	switch p {
	case task.High:
		return ical.PriorityHigh
	case task.Low:
		return ical.PriorityLow
	}
	return ical.PriorityMedium
}
