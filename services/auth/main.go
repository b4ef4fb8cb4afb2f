// Command auth is Perpetua Flow's identity service: Google sign-in, our access and refresh
// tokens, sessions, the user profile and the signing keys' JWKS. `auth migrate` applies
// the schema's migrations and exits.
package main

import "github.com/perpetua-flow/backend/libs/svc"

func main() { svc.Main("auth", Run, Migrate) }
