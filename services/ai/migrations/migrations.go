// Package migrations holds the ai schema's SQL migrations, embedded in the binary.
package migrations

import "embed"

// FS is the goose migrations, files at its root.
//
//go:embed *.sql
var FS embed.FS
