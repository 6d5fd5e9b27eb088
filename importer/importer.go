package importer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/sources"
)

// API is what the importer needs of the Chats API client.
type API interface {
	SendMessage(ctx context.Context, p *chatsapi.Payload) (*chatsapi.SendResult, error)
	CreateChat(ctx context.Context, conversationID string, user chatsapi.Participant) (*chatsapi.Chat, error)
	History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error)
}

// Notify modes.
const (
	NotifyNewest = "newest" // the newest message of each conversation is loud
	NotifyNone   = "none"   // everything silent
)

// Source is what staging reads: the validated records of one input, in
// order. *sources.Reader is one.
type Source interface {
	// Next returns the next record; a *sources.LineError for a bad record
	// (staging stores it and goes on), io.EOF at the end, any other error
	// when the input cannot be read.
	Next(ctx context.Context) (sources.Record, error)
	// Name names the input in messages: a file as given, "stdin".
	Name() string
	// Resumable reports whether reading the input again yields the same
	// records at the same positions, so staging may resume after a position.
	Resumable() bool
	// Stats counts what was read so far.
	Stats() sources.Stats
	Close() error
}

// OpenFunc opens the run's source; staging calls it each time it reads the
// input, from the start.
type OpenFunc func(ctx context.Context) (Source, error)

// Config is one run's settings. Zero values take the defaults noted.
type Config struct {
	Run         string   // run name; required
	ScopeID     string   // required
	Open        OpenFunc // the source to stage; required for a run that has not finished staging
	SourceLabel string   // how the source is recorded and shown (no passwords); required
	// SourceVersion identifies the version of a file source (size and
	// modification time). A run resumes only the version it started with:
	// staging resumes by line number, which means nothing in another file.
	SourceVersion string
	Notify        string  // NotifyNewest (default) or NotifyNone
	Rate          float64 // requests/s for all processes of the run together; default 5; <0: unlimited
	Workers       int     // concurrent conversations in this process; default 8

	Lease         time.Duration // conversation lease; default 60s
	Heartbeat     time.Duration // process heartbeat and lease renewal; default 1s (4 missed: the process is gone)
	ReconcileWait time.Duration // wait after an in-doubt attempt before trusting history; default 10s
	MaxAttempts   int           // attempts per message on retryable errors before the run stops; default 8
	BackoffBase   time.Duration // first retry delay; default 1s
	BackoffMax    time.Duration // longest retry delay; default 60s
	DefaultPause  time.Duration // pause on a 429 that gives no retry-after; default 60s
	BatchSize     int           // staging batch; default 10000
	DBOutageLimit time.Duration // how long sending waits for a lost database before the run stops; default 5m

	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Run == "" || c.ScopeID == "" || c.SourceLabel == "" {
		return errors.New("importer: Run, ScopeID and SourceLabel are required")
	}
	if c.Notify == "" {
		c.Notify = NotifyNewest
	}
	if c.Notify != NotifyNewest && c.Notify != NotifyNone {
		return fmt.Errorf("notify must be %q or %q, not %q", NotifyNewest, NotifyNone, c.Notify)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Rate == 0 {
		c.Rate = 5
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	def(&c.Lease, 60*time.Second)
	def(&c.Heartbeat, time.Second)
	def(&c.ReconcileWait, 10*time.Second)
	def(&c.BackoffBase, time.Second)
	def(&c.BackoffMax, 60*time.Second)
	def(&c.DefaultPause, 60*time.Second)
	def(&c.DBOutageLimit, 5*time.Minute)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Importer works one run. Several Importers (in one process or many) may
// work the same run at once.
type Importer struct {
	cfg     Config
	pool    *pgxpool.Pool
	api     API
	limiter *Limiter
	log     *slog.Logger
	procID  string

	stats counters
}

// New returns an Importer for cfg. The limiter must be the one the API
// client waits on before each attempt, so the importer can pause it on a 429
// and split the run's rate between processes.
func New(pool *pgxpool.Pool, api API, limiter *Limiter, cfg Config) (*Importer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &Importer{
		cfg:     cfg,
		pool:    pool,
		api:     api,
		limiter: limiter,
		log:     cfg.Logger,
		procID:  fmt.Sprintf("%s/%d/%s", strings.ReplaceAll(host, "#", "_"), os.Getpid(), hex.EncodeToString(b[:])), // "#" separates the worker in lease owners
	}, nil
}

// Outcome says how a run ended.
type Outcome string

// The outcomes of Run.
const (
	OutcomeDone        Outcome = "done"        // nothing left to send; no failures, no rejects
	OutcomeIncomplete  Outcome = "incomplete"  // nothing left to send, but some messages failed or records were rejected
	OutcomeInterrupted Outcome = "interrupted" // stopped early; running again resumes
	OutcomeStopped     Outcome = "stopped"     // stopped for the operator: account blocked, signature refused, clock skew
)

// StopError is returned when the run must stop until an operator acts.
type StopError struct {
	Reason string // what happened
	Hint   string // what to do
	Err    error
}

func (e *StopError) Error() string { return e.Reason }
func (e *StopError) Unwrap() error { return e.Err }

// ErrRunMismatch is returned (wrapped) when a run name is given for another
// job than the one the run was started for.
var ErrRunMismatch = errors.New("not the same run")

// ErrInterrupted is returned (wrapped) when a run stops early for a reason
// that another attempt may not have: a signal, an API outage, a lost database.
var ErrInterrupted = errors.New("interrupted")

const upsertRun = `
INSERT INTO kommo_import_runs (name, scope_id, source, source_version, notify, rate)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET rate = EXCLUDED.rate, updated_at = now()
RETURNING scope_id, source, source_version, notify, staging_done`

// openRun creates the run row, or checks that an existing one is the same job.
func (im *Importer) openRun(ctx context.Context) error {
	var scope, source, version, notify string
	var staged bool
	err := im.pool.QueryRow(ctx, upsertRun, im.cfg.Run, im.cfg.ScopeID, im.cfg.SourceLabel, im.cfg.SourceVersion, im.cfg.Notify, im.cfg.Rate).
		Scan(&scope, &source, &version, &notify, &staged)
	if err != nil {
		return fmt.Errorf("open run %s: %w", im.cfg.Run, err)
	}
	switch {
	case version != im.cfg.SourceVersion && source == im.cfg.SourceLabel:
		what := "has not finished staging it, and staging resumes by line number"
		if staged {
			what = "has staged that version already"
		}
		return fmt.Errorf("%w: run %q started from %s when it was %s; it is %s now, and the run %s: "+
			"give another --run name to import the new version (messages already sent are skipped), or restore the file",
			ErrRunMismatch, im.cfg.Run, source, version, im.cfg.SourceVersion, what)
	case scope != im.cfg.ScopeID:
		return fmt.Errorf("%w: run %q belongs to scope %s, not %s: give another --run name", ErrRunMismatch, im.cfg.Run, scope, im.cfg.ScopeID)
	case source != im.cfg.SourceLabel:
		return fmt.Errorf("%w: run %q was started from %s, not %s: resume it with the same source, or give another --run name", ErrRunMismatch, im.cfg.Run, source, im.cfg.SourceLabel)
	case notify != im.cfg.Notify:
		return fmt.Errorf("%w: run %q was planned with --notify %s; it cannot change to %s", ErrRunMismatch, im.cfg.Run, notify, im.cfg.Notify)
	}
	return nil
}

// Run stages, plans and sends the run until nothing is left or it must stop.
// Closing soft asks for a soft stop: no new conversation is claimed and no new
// message is started, the requests in flight finish and are checkpointed.
// Cancelling ctx stops at once; the database stays consistent (an interrupted
// request leaves its message in doubt, to be reconciled on resume).
func (im *Importer) Run(ctx context.Context, soft <-chan struct{}) (*Summary, error) {
	started := time.Now()
	err := im.withDB(ctx, "start", func(ctx context.Context) error {
		if err := im.openRun(ctx); err != nil {
			return err
		}
		return im.register(ctx)
	})
	if err != nil {
		return nil, err
	}
	defer im.unregister()

	// Staging resumes from its last committed batch, so a lost database
	// connection is waited out by starting it again.
	err = im.withDB(ctx, "staging", func(ctx context.Context) error { return im.stage(ctx, soft) }) // stages, then plans
	var sendStart time.Time
	if err == nil {
		sendStart = time.Now()
		err = im.send(ctx, soft)
	}
	var sum *Summary
	serr := im.withDB(context.WithoutCancel(ctx), "summary", func(ctx context.Context) (err error) {
		sum, err = im.summarize(ctx, started, sendStart)
		return err
	})
	if serr != nil && err == nil {
		err = serr
	}
	if sum != nil {
		sum.Outcome = outcomeOf(sum, err)
		if sum.Outcome == OutcomeStopped || sum.Outcome == OutcomeInterrupted {
			sum.StopReason = err.Error()
		}
	}
	return sum, err
}

func outcomeOf(s *Summary, err error) Outcome {
	var stop *StopError
	switch {
	case errors.As(err, &stop):
		return OutcomeStopped
	case err != nil:
		return OutcomeInterrupted
	case s.Failed > 0 || s.Rejected > 0:
		return OutcomeIncomplete
	default:
		return OutcomeDone
	}
}

// stopped reports whether soft has been closed.
func stopped(soft <-chan struct{}) bool {
	select {
	case <-soft:
		return true
	default:
		return false
	}
}

// checkpointCtx gives a checkpoint write its own deadline, detached from the
// run's cancellation, so a stopping run still records what it sent.
func checkpointCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
}
