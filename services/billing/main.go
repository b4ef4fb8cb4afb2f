// Command billing is the billing service of Perpetua Flow: the credit ledger, Pro
// subscriptions, Checkout.com payments and webhooks (API.md §5). `billing migrate`
// applies the migrations and exits.
package main

import "github.com/perpetua-flow/backend/libs/svc"

func main() { svc.Main("billing", Run, Migrate) }
