package wire

import (
	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
	"github.com/perpetua-flow/backend/services/tasks/internal/focus"
	"github.com/perpetua-flow/backend/services/tasks/internal/recurring"
	"github.com/perpetua-flow/backend/services/tasks/internal/reminder"
)

// Reminder is a task's reminder.
type Reminder struct {
	ID            string  `json:"id"`
	TaskID        string  `json:"task_id"`
	UserID        string  `json:"user_id"`
	Type          string  `json:"type"`
	OffsetMinutes *int    `json:"offset_minutes"`
	ScheduledAt   *string `json:"scheduled_at"`
	Method        string  `json:"method"`
	Fired         bool    `json:"fired"`
	FiredAt       *string `json:"fired_at"`
	CreatedAt     string  `json:"created_at"`
	UpdatedAt     string  `json:"updated_at"`
}

// FromReminder is the wire form of r.
func FromReminder(r reminder.Reminder) Reminder {
	return Reminder{ID: r.ID, TaskID: r.TaskID, UserID: r.UserID, Type: string(r.Type), OffsetMinutes: r.OffsetMinutes,
		ScheduledAt: TimePtr(r.ScheduledAt), Method: string(r.Method), Fired: r.Fired, FiredAt: TimePtr(r.FiredAt),
		CreatedAt: Time(r.CreatedAt), UpdatedAt: Time(r.UpdatedAt)}
}

// FromReminders is never nil.
func FromReminders(rs []reminder.Reminder) []Reminder {
	out := make([]Reminder, 0, len(rs))
	for _, r := range rs {
		out = append(out, FromReminder(r))
	}
	return out
}

// Template is a recurring template.
type Template struct {
	ID                string   `json:"id"`
	UserID            string   `json:"user_id"`
	Title             string   `json:"title"`
	Description       string   `json:"description"`
	Priority          string   `json:"priority"`
	EstimatedDuration *int     `json:"estimated_duration"`
	RRule             string   `json:"rrule"`
	RRuleText         string   `json:"rrule_text"`
	Subtasks          []string `json:"subtasks"`
	NextDue           *string  `json:"next_due"`
	Active            bool     `json:"active"`
	Version           int      `json:"version"`
	CreatedAt         string   `json:"created_at"`
	UpdatedAt         string   `json:"updated_at"`
}

// FromTemplate is the wire form of t.
func FromTemplate(t recurring.Template) Template {
	subs := t.Subtasks
	if subs == nil {
		subs = []string{}
	}
	return Template{ID: t.ID, UserID: t.UserID, Title: t.Title, Description: t.Description, Priority: string(t.Priority),
		EstimatedDuration: t.EstimatedDuration, RRule: t.RRule, RRuleText: t.Text(), Subtasks: subs,
		NextDue: TimePtr(t.NextDue), Active: t.Active, Version: t.Version, CreatedAt: Time(t.CreatedAt), UpdatedAt: Time(t.UpdatedAt)}
}

// FocusSession is a focus session.
type FocusSession struct {
	ID             string  `json:"id"`
	UserID         string  `json:"user_id"`
	TaskID         string  `json:"task_id"`
	StartedAt      string  `json:"started_at"`
	EndedAt        *string `json:"ended_at"`
	ElapsedSeconds int     `json:"elapsed_seconds"`
	EndedBy        *string `json:"ended_by"`
	AutoCloseAt    string  `json:"auto_close_at"`
}

// FromFocus is the wire form of s; an open session's elapsed_seconds is the time so far
// as of now (Unix seconds are enough).
func FromFocus(s focus.Session, elapsedSoFar int) FocusSession {
	out := FocusSession{ID: s.ID, UserID: s.UserID, TaskID: s.TaskID, StartedAt: Time(s.StartedAt), EndedAt: TimePtr(s.EndedAt),
		ElapsedSeconds: elapsedSoFar, AutoCloseAt: Time(s.AutoCloseAt())}
	if s.ElapsedSeconds != nil {
		out.ElapsedSeconds = *s.ElapsedSeconds
	}
	if s.EndedBy != "" {
		by := string(s.EndedBy)
		out.EndedBy = &by
	}
	return out
}

// Achievement is an entry of the catalogue.
type Achievement struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Message     string `json:"message"`
	Category    string `json:"category"`
	Threshold   int    `json:"threshold"`
	PerkType    string `json:"perk_type"`
	PerkValue   int    `json:"perk_value"`
}

// FromAchievement is the wire form of a.
func FromAchievement(a achievement.Achievement) Achievement {
	return Achievement{ID: string(a.ID), Name: a.Name, Description: a.Description, Message: a.Message, Category: string(a.Category),
		Threshold: a.Threshold, PerkType: string(a.Perk.Type), PerkValue: a.Perk.Value}
}

// AchievementStats is the stats block of GET /achievements/me.
type AchievementStats struct {
	LifetimeTasksCompleted int `json:"lifetime_tasks_completed"`
	CurrentStreak          int `json:"current_streak"`
	LongestStreak          int `json:"longest_streak"`
	FocusCompletions       int `json:"focus_completions"`
	NotesConverted         int `json:"notes_converted"`
}

// AchievementProgress is one line of progress.
type AchievementProgress struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	Current    int     `json:"current"`
	Threshold  int     `json:"threshold"`
	Unlocked   bool    `json:"unlocked"`
	UnlockedAt *string `json:"unlocked_at"`
}

// EffectiveLimits are the limits with perks; MaxTasks null is unlimited (Pro).
type EffectiveLimits struct {
	MaxTasks       *int `json:"max_tasks"`
	MaxSubtasks    int  `json:"max_subtasks"`
	MaxNotes       int  `json:"max_notes"`
	DailyAICredits int  `json:"daily_ai_credits"`
}

// AchievementsMe is GET /achievements/me.
type AchievementsMe struct {
	Stats           AchievementStats      `json:"stats"`
	Unlocked        []string              `json:"unlocked"`
	Progress        []AchievementProgress `json:"progress"`
	EffectiveLimits EffectiveLimits       `json:"effective_limits"`
}
