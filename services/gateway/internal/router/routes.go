package router

// Route sends the paths matching Pattern (chi syntax, any method) to Upstream, unchanged.
type Route struct {
	Pattern  string
	Upstream string
	// Public routes need no access token (API.md §2: sign-in, refresh, logout, dev login,
	// JWKS; the Checkout.com webhook; the calendar feed, which carries its own secret).
	Public bool
	// Class is the rate-limit class (ratelimit.Class*), or "" for none.
	Class string
	// Stream marks an SSE route: no total timeout, it lasts as long as the client.
	Stream bool
}

// Upstream and class names, repeated here so the table reads as one block.
const (
	auth    = "auth"
	tasks   = "tasks"
	ai      = "ai"
	billing = "billing"

	classAuth    = "auth"
	classAI      = "ai"
	classGeneral = "general"
)

// Routes is the routing table of TEAM.md (every path of API.md to its owner). The more
// specific pattern wins (chi prefers static segments, then parameters, then catch-alls),
// which is how /api/v1/ai/credits reaches billing and /api/v1/notes/{id}/convert reaches ai.
var Routes = []Route{
	// auth: sign-in and token endpoints are public; everything under /auth/* spends the
	// per-IP auth budget, signed in or not.
	{Pattern: "/api/v1/auth/google", Upstream: auth, Public: true, Class: classAuth},
	{Pattern: "/api/v1/auth/google/callback", Upstream: auth, Public: true, Class: classAuth},
	{Pattern: "/api/v1/auth/refresh", Upstream: auth, Public: true, Class: classAuth},
	{Pattern: "/api/v1/auth/logout", Upstream: auth, Public: true, Class: classAuth},
	{Pattern: "/api/v1/auth/dev/login", Upstream: auth, Public: true, Class: classAuth},
	{Pattern: "/api/v1/auth/*", Upstream: auth, Class: classAuth},
	{Pattern: "/api/v1/users/*", Upstream: auth, Class: classGeneral},
	{Pattern: "/api/v1/.well-known/jwks.json", Upstream: auth, Public: true},
	{Pattern: "/.well-known/jwks.json", Upstream: auth, Public: true},

	// tasks
	{Pattern: "/api/v1/tasks", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/tasks/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/subtasks/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/reminders", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/reminders/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/notes", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/notes/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/templates", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/templates/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/focus/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/tombstones", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/tombstones/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/achievements", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/achievements/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/activity", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/activity/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/notifications", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/notifications/*", Upstream: tasks, Class: classGeneral},
	{Pattern: "/api/v1/notifications/stream", Upstream: tasks, Class: classGeneral, Stream: true},
	{Pattern: "/api/v1/calendar/token", Upstream: tasks, Class: classGeneral},
	// The feed is fetched by calendar apps with the secret in the query, not a token: it
	// spends the general budget of the caller's IP.
	{Pattern: "/api/v1/calendar.ics", Upstream: tasks, Public: true, Class: classGeneral},

	// ai (the note conversion is an AI call although it lives under /notes; it is not
	// under /ai/*, so it spends the general budget as API.md §1 says)
	{Pattern: "/api/v1/ai/*", Upstream: ai, Class: classAI},
	{Pattern: "/api/v1/ai/chat/stream", Upstream: ai, Class: classAI, Stream: true},
	{Pattern: "/api/v1/notes/{id}/convert", Upstream: ai, Class: classGeneral},

	// billing (/ai/credits is an alias of /credits/balance; being under /ai/* it spends
	// the ai budget, as API.md §1 says)
	{Pattern: "/api/v1/ai/credits", Upstream: billing, Class: classAI},
	{Pattern: "/api/v1/credits/*", Upstream: billing, Class: classGeneral},
	{Pattern: "/api/v1/subscription", Upstream: billing, Class: classGeneral},
	{Pattern: "/api/v1/subscription/*", Upstream: billing, Class: classGeneral},
	// Checkout.com signs its webhooks and retries them: no token, no limit.
	{Pattern: "/api/v1/webhooks/checkout", Upstream: billing, Public: true},
}
