// Package migrations holds the tasks schema as numbered goose SQL files, embedded so the
// binary migrates itself (at start and with the migrate subcommand).
package migrations

import "embed"

// FS is the migration files.
//
//go:embed *.sql
var FS embed.FS
