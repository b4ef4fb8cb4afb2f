package chaos

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/perpetua-flow/backend/libs/natsx"
)

// ConsumerCheck compares, for one durable consumer, the events its producer committed to
// the outbox (those its filter selects) with the events its inbox recorded.
type ConsumerCheck struct {
	Durable  string
	Schema   string // the consuming service's schema (the durable's "<service>-" prefix)
	Producer string // the producing service's schema (the stream's name)
	Filter   []string
	Outbox   int      // events committed that the consumer must see
	Inbox    int      // events the consumer recorded
	Missing  []string // committed, never applied: lost
	Unknown  []string // applied, never committed (nothing should be)
	at       map[string]time.Time
}

// Finding is one thing lost or applied twice, with the time of the write it concerns
// (zero when no single write is to blame, e.g. a user's balance), so it can be laid
// against the fault that was running then.
type Finding struct {
	At   time.Time
	Lost bool // false: duplicated
	What string
}

// Report is what the verification found. Lost and Duplicated sum its findings.
type Report struct {
	AckedTasks    int
	MissingTasks  []string // answered 201, not in tasks.tasks
	OlderVersions []string // an answer reported version v, the row holds less
	LostReads     int      // GETs of acknowledged tasks answered 404

	Consumers   []ConsumerCheck
	Unpublished int    // outbox rows never published
	DeadLetters uint64 // messages in the dead-letter stream

	CreditOps         int      // consumes sent
	CreditSettled     int      // consumes that got a definite answer
	CreditCharged     int      // consumes answered with a charge
	CreditMissing     []string // answered charged, no operation row
	CreditDoubled     []string // an operation whose movements exceed its amount, or an extra operation
	CreditMismatch    []string // a user whose grants lost more than their operations took
	KickstartDoubled  []string // users granted kickstart credits more than once
	KickstartMissing  []string // users whose auth.user.created never granted kickstart
	CreditUnknownOps  int      // operations in the ledger the load never sent (other users)
	CreditOpsInLedger int

	Findings []Finding // every item above that is lost or duplicated, with its time
}

// In counts the findings whose write happened in [from, to): lost and duplicated.
func (r Report) In(from, to time.Time) (lost, duplicated int) {
	for _, f := range r.Findings {
		if f.At.IsZero() || f.At.Before(from) || !f.At.Before(to) {
			continue
		}
		if f.Lost {
			lost++
		} else {
			duplicated++
		}
	}
	return lost, duplicated
}

func (r *Report) add(at time.Time, lost bool, what string) {
	r.Findings = append(r.Findings, Finding{At: at, Lost: lost, What: what})
}

// Lost counts acknowledged writes or committed events that did not survive.
func (r Report) Lost() int {
	n := len(r.MissingTasks) + len(r.OlderVersions) + r.LostReads + r.Unpublished + int(r.DeadLetters) +
		len(r.CreditMissing) + len(r.KickstartMissing)
	for _, c := range r.Consumers {
		n += len(c.Missing)
	}
	return n
}

// Duplicated counts effects applied more than once.
func (r Report) Duplicated() int {
	n := len(r.CreditDoubled) + len(r.CreditMismatch) + len(r.KickstartDoubled)
	for _, c := range r.Consumers {
		n += len(c.Unknown)
	}
	return n
}

// String is a multi-line summary with the first few findings of each kind.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tasks: %d acknowledged creates, missing %d %v, older versions %d %v, lost reads %d\n",
		r.AckedTasks, len(r.MissingTasks), first(r.MissingTasks), len(r.OlderVersions), first(r.OlderVersions), r.LostReads)
	fmt.Fprintf(&b, "outbox: unpublished %d; dead letters %d\n", r.Unpublished, r.DeadLetters)
	for _, c := range r.Consumers {
		fmt.Fprintf(&b, "consumer %-30s %s.outbox %v → %s.inbox: committed %d, applied %d, missing %d %v, unknown %d %v\n",
			c.Durable, c.Producer, c.Filter, c.Schema, c.Outbox, c.Inbox, len(c.Missing), first(c.Missing), len(c.Unknown), first(c.Unknown))
	}
	fmt.Fprintf(&b, "credits: %d consumes sent, %d settled, %d charged; %d operations in the ledger; missing %d %v, doubled %d %v, spend mismatch %d %v\n",
		r.CreditOps, r.CreditSettled, r.CreditCharged, r.CreditOpsInLedger, len(r.CreditMissing), first(r.CreditMissing),
		len(r.CreditDoubled), first(r.CreditDoubled), len(r.CreditMismatch), first(r.CreditMismatch))
	fmt.Fprintf(&b, "kickstart: doubled %d %v, missing %d %v\n", len(r.KickstartDoubled), first(r.KickstartDoubled),
		len(r.KickstartMissing), first(r.KickstartMissing))
	for i, f := range r.Findings {
		if i == 10 {
			fmt.Fprintf(&b, "… and %d more findings\n", len(r.Findings)-i)
			break
		}
		fmt.Fprintf(&b, "finding at %s: %s\n", f.At.Format("15:04:05.000"), f.What)
	}
	return b.String()
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// Checker reads the stack's database (schemas auth, tasks, billing, ai) and broker.
type Checker struct {
	Pool *pgxpool.Pool // on the stack's database, no search_path needed (names are qualified)
	JS   jetstream.JetStream
}

// Consumers lists the durable consumers of the producing streams with their filters.
func (c Checker) Consumers(ctx context.Context) ([]ConsumerCheck, error) {
	var out []ConsumerCheck
	for _, st := range natsx.AllStreams {
		if st.Name == natsx.StreamDeadLetter.Name {
			continue
		}
		stream, err := c.JS.Stream(ctx, st.Name)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", st.Name, err)
		}
		lister := stream.ListConsumers(ctx)
		for info := range lister.Info() {
			filter := info.Config.FilterSubjects
			if info.Config.FilterSubject != "" {
				filter = append(filter, info.Config.FilterSubject)
			}
			if len(filter) == 0 {
				filter = st.Subjects
			}
			schema, _, _ := strings.Cut(info.Name, "-")
			out = append(out, ConsumerCheck{Durable: info.Name, Schema: schema, Producer: strings.ToLower(st.Name), Filter: filter})
		}
		if err := lister.Err(); err != nil {
			return nil, fmt.Errorf("consumers of %s: %w", st.Name, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Durable < out[j].Durable })
	return out, nil
}

// subjectRegexp turns NATS subject filters into one anchored regular expression.
func subjectRegexp(filters []string) string {
	parts := make([]string, len(filters))
	for i, f := range filters {
		toks := strings.Split(f, ".")
		for j, t := range toks {
			switch t {
			case "*":
				toks[j] = `[^.]+`
			case ">":
				toks[j] = `.+`
			default:
				toks[j] = regexp.QuoteMeta(t)
			}
		}
		parts[i] = strings.Join(toks, `\.`)
	}
	return "^(" + strings.Join(parts, "|") + ")$"
}

var validIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// check fills the counts and differences of one consumer.
func (c Checker) check(ctx context.Context, cc *ConsumerCheck) error {
	if !validIdent.MatchString(cc.Schema) || !validIdent.MatchString(cc.Producer) {
		return fmt.Errorf("consumer %s: unexpected schema names %q, %q", cc.Durable, cc.Schema, cc.Producer)
	}
	re := subjectRegexp(cc.Filter)
	// Schema names come from the checks above, never from outside input.
	rows, err := c.Pool.Query(ctx, fmt.Sprintf(`
		SELECT o.id::text, i.event_id IS NOT NULL, o.created_at
		FROM %[1]s.outbox o
		LEFT JOIN %[2]s.inbox i ON i.consumer = $1 AND i.event_id = o.id::text
		WHERE o.type ~ $2`, cc.Producer, cc.Schema), cc.Durable, re)
	if err != nil {
		return fmt.Errorf("consumer %s: %w", cc.Durable, err)
	}
	committed := map[string]bool{}
	cc.Outbox, cc.Missing, cc.at = 0, nil, map[string]time.Time{}
	for rows.Next() {
		var id string
		var applied bool
		var at time.Time
		if err := rows.Scan(&id, &applied, &at); err != nil {
			rows.Close()
			return err
		}
		committed[id] = true
		cc.Outbox++
		if !applied {
			cc.Missing = append(cc.Missing, id)
			cc.at[id] = at
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	inbox, err := c.strings(ctx, fmt.Sprintf(`SELECT event_id FROM %s.inbox WHERE consumer = $1`, cc.Schema), cc.Durable)
	if err != nil {
		return err
	}
	cc.Inbox, cc.Unknown = len(inbox), nil
	for _, id := range inbox {
		if !committed[id] {
			cc.Unknown = append(cc.Unknown, id)
		}
	}
	return nil
}

func (c Checker) strings(ctx context.Context, sql string, args ...any) ([]string, error) {
	rows, err := c.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// unpublished counts outbox rows not yet published in every producing schema.
func (c Checker) unpublished(ctx context.Context) (int, error) {
	total := 0
	for _, st := range natsx.AllStreams {
		if st.Name == natsx.StreamDeadLetter.Name {
			continue
		}
		var n int
		if err := c.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s.outbox WHERE published_at IS NULL`, strings.ToLower(st.Name))).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Settled polls until every outbox row is published and every consumer applied every
// event it must, or the deadline passes; it returns what is still outstanding.
func (c Checker) Settled(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		last = c.outstanding(ctx)
		if last == nil || time.Now().After(deadline) {
			return last
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c Checker) outstanding(ctx context.Context) error {
	n, err := c.unpublished(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d outbox rows unpublished", n)
	}
	ccs, err := c.Consumers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range ccs {
		if err := c.check(ctx, &ccs[i]); err != nil {
			return err
		}
		if len(ccs[i].Missing) > 0 {
			errs = append(errs, fmt.Errorf("%s has not applied %d events", ccs[i].Durable, len(ccs[i].Missing)))
		}
	}
	return errors.Join(errs...)
}

// Verify compares what the load was told with what the database and broker hold.
func (c Checker) Verify(ctx context.Context, load *Load, credits *Credits) (Report, error) {
	var r Report
	if load != nil {
		if err := c.verifyTasks(ctx, load, &r); err != nil {
			return r, err
		}
	}
	ccs, err := c.Consumers(ctx)
	if err != nil {
		return r, err
	}
	for i := range ccs {
		if err := c.check(ctx, &ccs[i]); err != nil {
			return r, err
		}
	}
	r.Consumers = ccs
	for _, cc := range ccs {
		for _, id := range cc.Missing {
			r.add(cc.at[id], true, cc.Durable+" never applied "+id)
		}
		for _, id := range cc.Unknown {
			r.add(time.Time{}, false, cc.Durable+" applied "+id+", which no outbox holds")
		}
	}
	if r.Unpublished, err = c.unpublished(ctx); err != nil {
		return r, err
	}
	dl, err := c.JS.Stream(ctx, natsx.StreamDeadLetter.Name)
	if err != nil {
		return r, err
	}
	info, err := dl.Info(ctx)
	if err != nil {
		return r, err
	}
	r.DeadLetters = info.State.Msgs
	if credits != nil {
		if err := c.verifyCredits(ctx, credits, &r); err != nil {
			return r, err
		}
	}
	return r, c.verifyKickstart(ctx, &r)
}

func (c Checker) verifyTasks(ctx context.Context, load *Load, r *Report) error {
	acked := load.AckedTasks()
	r.AckedTasks = len(acked)
	r.LostReads = len(load.LostReads())
	for _, lr := range load.LostReads() {
		r.add(lr.At, true, "GET of acknowledged task "+lr.TaskID+" answered 404")
	}
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	rows, err := c.Pool.Query(ctx, `SELECT id::text, user_id::text, version FROM tasks.tasks WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id, user string
		var version int
		if err := rows.Scan(&id, &user, &version); err != nil {
			return err
		}
		found[id] = true
		if a := acked[id]; a.UserID != user || version < a.Version {
			r.OlderVersions = append(r.OlderVersions, fmt.Sprintf("%s: answered v%d of %s, row v%d of %s", id, a.Version, a.UserID, version, user))
			r.add(a.At, true, "task "+id+" lost an acknowledged update")
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if !found[id] {
			r.MissingTasks = append(r.MissingTasks, id)
			r.add(acked[id].At, true, "acknowledged task "+id+" is not stored")
		}
	}
	sort.Strings(r.MissingTasks)
	return nil
}

func (c Checker) verifyCredits(ctx context.Context, credits *Credits, r *Report) error {
	ops := credits.Ops()
	r.CreditOps = len(ops)
	sent := map[string]CreditOp{}
	users := map[string]bool{}
	for _, op := range ops {
		sent[op.UserID+"/"+op.OperationID] = op
		users[op.UserID] = true
		if op.Settled {
			r.CreditSettled++
		}
		if op.Charged > 0 {
			r.CreditCharged++
		}
	}
	userIDs := make([]string, 0, len(users))
	for u := range users {
		userIDs = append(userIDs, u)
	}
	// Every operation of the load's users, with what its movements took.
	rows, err := c.Pool.Query(ctx, `
		SELECT o.user_id::text, o.operation_id, o.amount, coalesce(o.refunded, 0),
		       coalesce((SELECT sum(m.amount) FROM billing.credit_movements m
		                 WHERE m.user_id = o.user_id AND m.operation_id = o.operation_id), 0)
		FROM billing.credit_operations o WHERE o.user_id = ANY($1::uuid[])`, userIDs)
	if err != nil {
		return err
	}
	inLedger := map[string]bool{}
	for rows.Next() {
		var user, op string
		var amount, refunded, moved int
		if err := rows.Scan(&user, &op, &amount, &refunded, &moved); err != nil {
			rows.Close()
			return err
		}
		key := user + "/" + op
		inLedger[key] = true
		r.CreditOpsInLedger++
		if _, ok := sent[key]; !ok {
			r.CreditUnknownOps++
			r.CreditDoubled = append(r.CreditDoubled, key+": in the ledger, never sent")
			r.add(time.Time{}, false, key+" in the ledger, never sent")
		}
		if moved != amount {
			r.CreditDoubled = append(r.CreditDoubled, fmt.Sprintf("%s: amount %d, movements %d", key, amount, moved))
			r.add(sent[key].At, false, key+" took more than its amount")
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for key, op := range sent {
		if op.Charged > 0 && !inLedger[key] {
			r.CreditMissing = append(r.CreditMissing, key)
			r.add(op.At, true, key+" charged but not in the ledger")
		}
	}
	// What the grants lost must equal what the operations took (net of refunds): a credit
	// spent twice would show as a grant drained more than the operations account for.
	rows, err = c.Pool.Query(ctx, `
		WITH drained AS (
			SELECT user_id, sum(amount - remaining) AS n FROM billing.credit_grants
			WHERE user_id = ANY($1::uuid[]) AND NOT expired GROUP BY user_id),
		taken AS (
			SELECT user_id, sum(amount - coalesce(refunded, 0)) AS n FROM billing.credit_operations
			WHERE user_id = ANY($1::uuid[]) GROUP BY user_id)
		SELECT coalesce(d.user_id, t.user_id)::text, coalesce(d.n, 0), coalesce(t.n, 0)
		FROM drained d FULL JOIN taken t ON t.user_id = d.user_id
		WHERE coalesce(d.n, 0) <> coalesce(t.n, 0)`, userIDs)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var user string
		var drained, taken int64
		if err := rows.Scan(&user, &drained, &taken); err != nil {
			return err
		}
		r.CreditMismatch = append(r.CreditMismatch, fmt.Sprintf("%s: grants drained %d, operations took %d", user, drained, taken))
		r.add(time.Time{}, false, "user "+user+": grants drained more than the operations took")
	}
	return rows.Err()
}

// verifyKickstart checks the effect of auth.user.created on billing: one kickstart grant
// per created user, never two.
func (c Checker) verifyKickstart(ctx context.Context, r *Report) error {
	var err error
	r.KickstartDoubled, err = c.strings(ctx, `
		SELECT user_id::text FROM billing.credit_grants WHERE kind = 'kickstart'
		GROUP BY user_id HAVING count(*) > 1`)
	if err != nil {
		return err
	}
	for _, u := range r.KickstartDoubled {
		r.add(time.Time{}, false, "user "+u+" got kickstart credits twice")
	}
	r.KickstartMissing, err = c.strings(ctx, `
		SELECT o.payload->'data'->>'user_id' FROM auth.outbox o
		WHERE o.type = 'auth.user.created' AND NOT EXISTS (
			SELECT 1 FROM billing.credit_grants g
			WHERE g.kind = 'kickstart' AND g.user_id::text = o.payload->'data'->>'user_id')`)
	for _, u := range r.KickstartMissing {
		r.add(time.Time{}, true, "user "+u+" never got kickstart credits")
	}
	return err
}
