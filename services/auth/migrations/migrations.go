// Package migrations holds the auth schema's SQL migrations (goose format), embedded so
// the binary migrates itself at start and in its `migrate` subcommand.
package migrations

import "embed"

// FS is the migration files at its root.
//
//go:embed *.sql
var FS embed.FS
