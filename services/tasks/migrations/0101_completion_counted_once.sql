-- +goose Up

-- Whether a task's completion has been counted toward the achievements: a task counts
-- once however often it is un-completed and completed again, so toggling one task cannot
-- farm tasks_500 (the streak, which counts days, is not affected).
ALTER TABLE tasks ADD COLUMN achievement_counted boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE tasks DROP COLUMN achievement_counted;
