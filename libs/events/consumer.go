package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

// DeadLetterPrefix starts every dead-letter subject: deadletter.<durable>.<original
// subject>, carried by the DEADLETTER stream (natsx.StreamDeadLetter).
const DeadLetterPrefix = "deadletter"

// Headers added to a dead-lettered message (beside the original headers).
const (
	HeaderDeadLetterReason     = "Perpetua-Dead-Letter-Reason"
	HeaderDeadLetterConsumer   = "Perpetua-Dead-Letter-Consumer"
	HeaderDeadLetterDeliveries = "Perpetua-Dead-Letter-Deliveries"
	HeaderDeadLetterStream     = "Perpetua-Dead-Letter-Stream"
	HeaderDeadLetterSequence   = "Perpetua-Dead-Letter-Sequence"
	HeaderDeadLetterSubject    = "Perpetua-Dead-Letter-Subject"
)

// Defaults of ConsumerConfig.
const (
	DefaultMaxDeliver = 5
	DefaultAckWait    = 30 * time.Second
)

// DefaultBackoff is the wait before each redelivery after a handler error (the last value
// repeats).
var DefaultBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}

// tracerName names the spans of this package.
const tracerName = "github.com/perpetua-flow/backend/libs/events"

// extraDeliveries lets the server redeliver a message a few times past MaxDeliver so that a
// failed dead-letter publish (or a crash during the last try) is retried; the handler never
// runs past MaxDeliver.
const extraDeliveries = 3

// ConsumerConfig describes one durable pull consumer.
type ConsumerConfig struct {
	// Stream to consume, e.g. natsx.StreamAuth.Name ("AUTH").
	Stream string
	// Durable is the consumer's name, one per (service, purpose): "<service>-<purpose>",
	// e.g. "billing-kickstart". Letters, digits, '-' and '_'. Part of the public contract:
	// renaming it starts a new consumer from the beginning of the stream.
	Durable string
	// Subjects filters the stream (e.g. authevents.TypeUserCreated); empty takes all.
	Subjects []string
	// MaxDeliver bounds the handler's attempts (default 5); after the last failure the
	// message goes to the dead-letter subject.
	MaxDeliver int
	// Backoff is the wait before redelivery after attempt i fails (Backoff[i-1], the last
	// value repeating); default DefaultBackoff.
	Backoff []time.Duration
	// AckWait must exceed the slowest handler (default 30s): an unacknowledged message is
	// redelivered after it, and the handler's context ends at it.
	AckWait time.Duration
	// Metrics, when not nil, counts outcomes under the consumer's name.
	Metrics *Metrics
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	return c
}

func (c ConsumerConfig) validate() error {
	var errs []error
	if c.Stream == "" || !validToken(c.Stream) {
		errs = append(errs, fmt.Errorf("stream %q is not a stream name", c.Stream))
	}
	if !validToken(c.Durable) {
		errs = append(errs, fmt.Errorf("durable %q: use letters, digits, '-' and '_'", c.Durable))
	}
	for _, b := range c.Backoff {
		if b < 0 {
			errs = append(errs, fmt.Errorf("backoff %v is negative", b))
		}
	}
	return errors.Join(errs...)
}

// TxHandler applies an event's effect in tx, the transaction that also records the event
// in the inbox: both commit or neither.
type TxHandler func(ctx context.Context, tx pgx.Tx, ev Event) error

// Handler applies an event's effect without a transaction held (it calls other services
// or providers). It must be idempotent itself: a crash after its effect and before the
// inbox row is written repeats it.
type Handler func(ctx context.Context, ev Event) error

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks a handler error that no retry can fix (a payload that cannot be
// applied): the message goes to the dead-letter subject at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports an error made by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Consumer runs a handler over a durable pull consumer with explicit ack: an event is
// acknowledged only after its effect (and inbox row) committed; a failure is redelivered
// after a backoff up to MaxDeliver attempts and then published, with the reason, to
// deadletter.<durable>.<subject> and acknowledged.
type Consumer struct {
	pool   *pgxpool.Pool
	js     jetstream.JetStream
	cons   jetstream.Consumer
	cfg    ConsumerConfig
	logger *slog.Logger
	txh    TxHandler
	h      Handler
}

// NewConsumer creates (or updates) the durable consumer and returns one whose handler runs
// in the inbox transaction. Run it with Worker.
func NewConsumer(pool *pgxpool.Pool, js jetstream.JetStream, cfg ConsumerConfig, h TxHandler, logger *slog.Logger) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("events: NewConsumer: nil handler")
	}
	return newConsumer(pool, js, cfg, h, nil, logger)
}

// NewPlainConsumer is NewConsumer for a handler that must not hold a transaction: the
// inbox is checked before and written after the handler.
func NewPlainConsumer(pool *pgxpool.Pool, js jetstream.JetStream, cfg ConsumerConfig, h Handler, logger *slog.Logger) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("events: NewPlainConsumer: nil handler")
	}
	return newConsumer(pool, js, cfg, nil, h, logger)
}

func newConsumer(pool *pgxpool.Pool, js jetstream.JetStream, cfg ConsumerConfig, txh TxHandler, h Handler, logger *slog.Logger) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("events: consumer: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       cfg.AckWait,
		// Backoff is applied by NakWithDelay, not the server's BackOff, which would replace
		// AckWait with its first value and redeliver while a slow handler still runs.
		MaxDeliver:    cfg.MaxDeliver + extraDeliveries,
		MaxAckPending: 1000,
	}
	switch len(cfg.Subjects) {
	case 0:
	case 1:
		cc.FilterSubject = cfg.Subjects[0]
	default:
		cc.FilterSubjects = cfg.Subjects
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Stream, cc)
	if err != nil {
		return nil, fmt.Errorf("events: consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
	}
	return &Consumer{
		pool: pool, js: js, cons: cons, cfg: cfg, txh: txh, h: h,
		logger: logger.With("component", "consumer", "consumer", cfg.Durable),
	}, nil
}

// Worker runs the consumer until its context ends; the message in flight is finished
// (handled and acknowledged) before it returns.
func (c *Consumer) Worker() svc.Worker {
	return svc.Worker{Name: "consumer " + c.cfg.Durable, Run: c.Run}
}

// fetchWait bounds one pull request; ctx's end interrupts it at once.
const fetchWait = 5 * time.Second

// Run consumes until ctx ends and returns nil then.
func (c *Consumer) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		fctx, cancel := context.WithTimeout(ctx, fetchWait)
		msg, err := c.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
				continue
			}
			c.logger.Warn("fetch failed", "err", err)
			// A broken connection would spin: wait a little, interruptibly.
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		// The message in flight is finished even when ctx ends meanwhile (drain), but
		// never past AckWait, when the server redelivers it anyway.
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.AckWait)
		c.handle(hctx, msg)
		hcancel()
	}
}

// attemptKey carries the delivery's attempt number and the consumer's MaxDeliver to the
// handler.
type attemptKey struct{}

type attemptInfo struct{ attempt, max int }

func withAttempt(ctx context.Context, attempt, max int) context.Context {
	return context.WithValue(ctx, attemptKey{}, attemptInfo{attempt, max})
}

// LastAttempt reports whether the handler runs for the last time for this event: a
// retryable error now sends the event to the dead-letter subject. A handler whose
// dependency stays down can settle the work as failed instead (a voice note marked not
// transcribed) rather than leave it pending for ever. False outside a consumer.
func LastAttempt(ctx context.Context) bool {
	a, ok := ctx.Value(attemptKey{}).(attemptInfo)
	return ok && a.attempt >= a.max
}

// errDuplicate stops the inbox transaction of an event already applied.
var errDuplicate = errors.New("events: already processed")

// handle runs one delivery to its end: ack, nak with delay, or dead letter + ack.
func (c *Consumer) handle(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		c.logger.Error("message without metadata", "subject", msg.Subject(), "err", err)
		c.settle(msg.Term(), "term")
		return
	}
	attempt := int(md.NumDelivered)
	// The handler's work is a child of the producer's trace (its request).
	ctx = telemetry.ExtractNATS(ctx, msg.Headers())
	ctx, span := otel.Tracer(tracerName).Start(ctx, "process "+msg.Subject(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.consumer.group.name", c.cfg.Durable),
			attribute.Int("messaging.delivery.attempt", int(md.NumDelivered)),
		))
	defer span.End()
	log := c.logger.With("subject", msg.Subject(), "stream_seq", md.Sequence.Stream, "attempt", attempt)

	ev, err := Parse(msg.Data())
	if err != nil {
		c.deadLetter(ctx, msg, md, Permanent(err), log)
		return
	}
	log = log.With("event_id", ev.ID)

	if attempt > c.cfg.MaxDeliver {
		// The last try crashed or its dead-letter publish failed: no more handler runs.
		done, err := c.processed(ctx, ev.ID)
		switch {
		case err != nil:
			log.Error("inbox check failed", "err", err)
			c.settle(msg.NakWithDelay(c.backoff(attempt)), "nak")
		case done:
			c.count(OutcomeDuplicate)
			c.settle(msg.Ack(), "ack")
		default:
			c.deadLetter(ctx, msg, md, fmt.Errorf("delivered %d times, the handler never finished", attempt-1), log)
		}
		return
	}

	err = c.run(withAttempt(ctx, attempt, c.cfg.MaxDeliver), ev)
	if err != nil && !errors.Is(err, errDuplicate) {
		span.SetStatus(codes.Error, err.Error())
	}
	switch {
	case err == nil:
		c.count(OutcomeOK)
		c.settle(msg.Ack(), "ack")
	case errors.Is(err, errDuplicate):
		c.count(OutcomeDuplicate)
		c.settle(msg.Ack(), "ack")
	case IsPermanent(err) || attempt >= c.cfg.MaxDeliver:
		c.deadLetter(ctx, msg, md, err, log)
	default:
		c.count(OutcomeRetry)
		log.Warn("handler failed; will retry", "err", err)
		c.settle(msg.NakWithDelay(c.backoff(attempt)), "nak")
	}
}

// run applies ev with the consumer's kind of handler. A panicking handler is a failed
// attempt, not a crashed service (which would restart into the same message).
func (c *Consumer) run(ctx context.Context, ev Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.logger.Error("handler panicked", "event_id", ev.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	if c.txh != nil {
		return c.runTx(ctx, ev)
	}
	return c.runPlain(ctx, ev)
}

// runTx records the event in the inbox and applies it in one transaction.
func (c *Consumer) runTx(ctx context.Context, ev Event) error {
	return pg.InTx(ctx, c.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)
			ON CONFLICT DO NOTHING`, c.cfg.Durable, ev.ID)
		if err != nil {
			return fmt.Errorf("events: inbox: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return errDuplicate
		}
		return c.txh(ctx, tx, ev)
	})
}

// runPlain checks the inbox, applies the event without a transaction, then records it.
func (c *Consumer) runPlain(ctx context.Context, ev Event) error {
	done, err := c.processed(ctx, ev.ID)
	if err != nil {
		return err
	}
	if done {
		return errDuplicate
	}
	if err := c.h(ctx, ev); err != nil {
		return err
	}
	if _, err := c.pool.Exec(ctx, `
		INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, c.cfg.Durable, ev.ID); err != nil {
		return fmt.Errorf("events: inbox: %w", err)
	}
	return nil
}

func (c *Consumer) processed(ctx context.Context, eventID string) (bool, error) {
	var done bool
	err := c.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2)`,
		c.cfg.Durable, eventID).Scan(&done)
	if err != nil {
		return false, fmt.Errorf("events: inbox: %w", err)
	}
	return done, nil
}

// deadLetter publishes the message with the failure reason to
// deadletter.<durable>.<subject> and acknowledges it; if that publish fails, it naks so
// the next delivery tries again.
func (c *Consumer) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, cause error, log *slog.Logger) {
	dl := nats.NewMsg(DeadLetterPrefix + "." + c.cfg.Durable + "." + msg.Subject())
	dl.Data = msg.Data()
	for k, vs := range msg.Headers() {
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	reason := cause.Error()
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	dl.Header.Set(HeaderDeadLetterReason, reason)
	dl.Header.Set(HeaderDeadLetterConsumer, c.cfg.Durable)
	dl.Header.Set(HeaderDeadLetterDeliveries, strconv.FormatUint(md.NumDelivered, 10))
	dl.Header.Set(HeaderDeadLetterStream, md.Stream)
	dl.Header.Set(HeaderDeadLetterSequence, strconv.FormatUint(md.Sequence.Stream, 10))
	dl.Header.Set(HeaderDeadLetterSubject, msg.Subject())
	// One dead letter per (consumer, event, stream message), however often this is retried.
	dl.Header.Set(jetstream.MsgIDHeader, c.cfg.Durable+":"+msg.Headers().Get(jetstream.MsgIDHeader)+":"+md.Stream+":"+strconv.FormatUint(md.Sequence.Stream, 10))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := c.js.PublishMsg(pctx, dl); err != nil {
		log.Error("dead-letter publish failed; will retry", "err", err, "reason", reason)
		c.settle(msg.NakWithDelay(c.backoff(int(md.NumDelivered))), "nak")
		return
	}
	c.count(OutcomeDeadLetter)
	log.Error("event dead-lettered", "reason", reason, "dead_letter_subject", dl.Subject)
	c.settle(msg.Ack(), "ack")
}

// backoff is the wait before the delivery after attempt.
func (c *Consumer) backoff(attempt int) time.Duration {
	i := min(max(attempt-1, 0), len(c.cfg.Backoff)-1)
	return c.cfg.Backoff[i]
}

func (c *Consumer) count(outcome string) {
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.Handled.WithLabelValues(c.cfg.Durable, outcome).Inc()
	}
}

// settle logs a failed ack/nak: the server redelivers after AckWait, and the inbox keeps
// that harmless.
func (c *Consumer) settle(err error, what string) {
	if err != nil {
		c.logger.Warn(what+" failed; the message will be redelivered", "err", err)
	}
}
