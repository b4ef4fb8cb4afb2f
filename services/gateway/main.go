// Command gateway is Perpetua Flow's only public listener: it verifies access tokens,
// applies the rate limits of API.md §1 and reverse-proxies every path to the service that
// owns it (TEAM.md's routing table), streaming SSE through unbuffered.
package main

import "github.com/perpetua-flow/backend/libs/svc"

func main() { svc.Main("gateway", Run, nil) }
