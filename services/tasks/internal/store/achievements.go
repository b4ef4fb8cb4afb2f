package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/pg"

	"github.com/perpetua-flow/backend/services/tasks/internal/achievement"
	"github.com/perpetua-flow/backend/services/tasks/internal/task"
)

// userStats is the user_stats row: the achievement counters and the streak.
type userStats struct {
	stats  achievement.Stats
	streak achievement.Streak
}

// lockStats reads the user's stats row FOR UPDATE, creating it first: two completions of
// one user serialise here, so the streak and the counters never lose an update.
func (s *Store) lockStats(ctx context.Context, tx pgx.Tx, userID string) (userStats, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO user_stats (user_id, updated_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`,
		userID, s.now()); err != nil {
		return userStats{}, err
	}
	return scanStats(tx.QueryRow(ctx, `SELECT lifetime_completed, focus_completions, notes_converted, current_streak,
		longest_streak, last_completion_day FROM user_stats WHERE user_id = $1 FOR UPDATE`, userID))
}

func scanStats(row pgx.Row) (userStats, error) {
	var (
		u    userStats
		last *time.Time
	)
	err := row.Scan(&u.stats.LifetimeCompleted, &u.stats.FocusCompletions, &u.stats.NotesConverted,
		&u.streak.Current, &u.streak.Longest, &last)
	if last != nil {
		u.streak.LastDay = time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, time.UTC)
	}
	u.stats.CurrentStreak, u.stats.LongestStreak = u.streak.Current, u.streak.Longest
	return u, err
}

func (s *Store) saveStats(ctx context.Context, tx pgx.Tx, userID string, u userStats) error {
	var last *time.Time
	if !u.streak.LastDay.IsZero() {
		last = &u.streak.LastDay
	}
	_, err := tx.Exec(ctx, `UPDATE user_stats SET lifetime_completed = $2, focus_completions = $3, notes_converted = $4,
		current_streak = $5, longest_streak = $6, last_completion_day = $7, updated_at = $8 WHERE user_id = $1`,
		userID, u.stats.LifetimeCompleted, u.stats.FocusCompletions, u.stats.NotesConverted,
		u.streak.Current, u.streak.Longest, last, s.now())
	return err
}

// unlockedSet is the user's unlocked achievements.
func unlockedSet(ctx context.Context, q pg.Querier, userID string) (achievement.Set, error) {
	rows, err := q.Query(ctx, `SELECT achievement_id FROM user_achievements WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	set := achievement.Set{}
	for _, id := range ids {
		set[achievement.ID(id)] = true
	}
	return set, nil
}

// recordCompletion is the motivational side of one completion of t at at, inside the
// completion's transaction: the streak and (on the task's first completion) the counters
// move, achievements newly reached
// are unlocked (once: the primary key of user_achievements), each announced by
// tasks.achievement.unlocked and a notification pushed after commit.
func (s *Store) recordCompletion(ctx context.Context, tx pgx.Tx, t task.Task, at time.Time) (task.Completion, error) {
	u, err := s.lockStats(ctx, tx, t.UserID)
	if err != nil {
		return task.Completion{}, err
	}
	var open bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM focus_sessions WHERE user_id = $1 AND task_id = $2 AND ended_at IS NULL)`,
		t.UserID, t.ID).Scan(&open); err != nil {
		return task.Completion{}, err
	}
	// A task counts toward the completion achievements once, however often it is
	// un-completed and completed again; the streak counts days and moves every time.
	tag, err := tx.Exec(ctx, `UPDATE tasks SET achievement_counted = true WHERE id = $1 AND user_id = $2 AND NOT achievement_counted`,
		t.ID, t.UserID)
	if err != nil {
		return task.Completion{}, err
	}
	if tag.RowsAffected() == 1 {
		u.stats.LifetimeCompleted++
		if achievement.IsFocusCompletion(t.FocusTimeSeconds, t.EstimatedDuration, open) {
			u.stats.FocusCompletions++
		}
	}
	u.streak = achievement.RecordCompletion(u.streak, at)
	u.stats.CurrentStreak, u.stats.LongestStreak = u.streak.Current, u.streak.Longest
	if err := s.saveStats(ctx, tx, t.UserID, u); err != nil {
		return task.Completion{}, err
	}
	unlocked, err := s.unlock(ctx, tx, t.UserID, u.stats, &t.ID)
	if err != nil {
		return task.Completion{}, err
	}
	return task.Completion{Unlocked: unlocked, Streak: task.Streak{Current: achievement.CurrentAt(u.streak, s.now()), Longest: u.streak.Longest}}, nil
}

// unlock stores the achievements stats reaches that the user does not have yet, emits
// their events and writes their notifications (queued for the push after commit).
func (s *Store) unlock(ctx context.Context, tx pgx.Tx, userID string, stats achievement.Stats, taskID *string) ([]task.Achievement, error) {
	have, err := unlockedSet(ctx, tx, userID)
	if err != nil {
		return nil, err
	}
	out := []task.Achievement{}
	now := s.now()
	for _, a := range achievement.Evaluate(stats, have) {
		tag, err := tx.Exec(ctx, `INSERT INTO user_achievements (user_id, achievement_id, unlocked_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, userID, string(a.ID), now)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			continue
		}
		if err := s.emit(ctx, tx, tasksevents.TypeAchievementUnlocked, userID, tasksevents.AchievementUnlocked{
			UserID: userID, AchievementID: string(a.ID), PerkType: string(a.Perk.Type), PerkValue: a.Perk.Value, UnlockedAt: now,
		}); err != nil {
			return nil, err
		}
		n, _, err := s.CreateNotification(ctx, tx, task.Notification{
			UserID: userID, Type: task.NotificationAchievement, Title: "Achievement unlocked: " + a.Name,
			Body: a.Message, ActionURL: "/achievements", TaskID: taskID,
		}, "")
		if err != nil {
			return nil, err
		}
		s.queuePush(tx, n)
		if err := s.record(ctx, tx, Actor{UserID: userID, Source: task.SourceSystem}, task.EntityType("achievement"), string(a.ID), "unlocked",
			map[string]any{"perk_type": string(a.Perk.Type), "perk_value": a.Perk.Value}); err != nil {
			return nil, err
		}
		out = append(out, toTaskAchievement(a))
	}
	return out, nil
}

func toTaskAchievement(a achievement.Achievement) task.Achievement {
	return task.Achievement{ID: string(a.ID), Name: a.Name, Description: a.Description, Category: string(a.Category),
		Threshold: a.Threshold, PerkType: task.PerkType(a.Perk.Type), PerkValue: a.Perk.Value}
}

// NoteConverted counts one converted note (ai.note.converted) in tx and unlocks what it
// reaches; the consumer's inbox makes a redelivered event count once.
func (s *Store) NoteConverted(ctx context.Context, tx pgx.Tx, userID string) ([]task.Achievement, error) {
	if !ValidID(userID) {
		return nil, nil
	}
	u, err := s.lockStats(ctx, tx, userID)
	if err != nil {
		return nil, err
	}
	u.stats.NotesConverted++
	if err := s.saveStats(ctx, tx, userID, u); err != nil {
		return nil, err
	}
	return s.unlock(ctx, tx, userID, u.stats, nil)
}

// AchievementState is GET /achievements/me: the stats (current streak as of now), the
// unlocked ids and when each was unlocked.
type AchievementState struct {
	Stats      achievement.Stats
	Unlocked   achievement.Set
	UnlockedAt map[achievement.ID]time.Time
}

// Achievements reads the user's achievement state.
func (s *Store) Achievements(ctx context.Context, userID string) (AchievementState, error) {
	st := AchievementState{Unlocked: achievement.Set{}, UnlockedAt: map[achievement.ID]time.Time{}}
	u, err := scanStats(s.pool.QueryRow(ctx, `SELECT lifetime_completed, focus_completions, notes_converted, current_streak,
		longest_streak, last_completion_day FROM user_stats WHERE user_id = $1`, userID))
	switch {
	case pg.IsNoRows(err):
	case err != nil:
		return st, err
	default:
		st.Stats = u.stats
		st.Stats.CurrentStreak = achievement.CurrentAt(u.streak, s.now())
	}
	rows, err := s.pool.Query(ctx, `SELECT achievement_id, unlocked_at FROM user_achievements WHERE user_id = $1`, userID)
	if err != nil {
		return st, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			at time.Time
		)
		if err := rows.Scan(&id, &at); err != nil {
			return st, err
		}
		st.Unlocked[achievement.ID(id)] = true
		st.UnlockedAt[achievement.ID(id)] = at
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("achievements: %w", err)
	}
	return st, nil
}
