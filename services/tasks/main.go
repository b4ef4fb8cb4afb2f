// Command tasks is the tasks service of Perpetua Flow: tasks, subtasks, notes, recovery,
// activity and notifications (API.md §3). `tasks migrate` applies the migrations and exits.
package main

import "github.com/perpetua-flow/backend/libs/svc"

func main() { svc.Main("tasks", Run, Migrate) }
