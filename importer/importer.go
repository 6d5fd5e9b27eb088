package importer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/sources"
)

// API is what the importer needs of the Chats API client. The client must not
// pace its requests itself: the importer takes a slot of the scope's rate
// schedule before every attempt it makes.
type API interface {
	SendMessage(ctx context.Context, p *chatsapi.Payload) (*chatsapi.SendResult, error)
	CreateChat(ctx context.Context, conversationID string, user chatsapi.Participant) (*chatsapi.Chat, error)
	History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error)
}

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
	// Run names the run; "" derives a name from ScopeID and Source, so the
	// same command resumes the same run.
	Run     string
	ScopeID string           // required
	Source  sources.Identity // what the run reads; Label is required
	Open    OpenFunc         // opens the source; needed until the run has finished staging
	Notify  Notify           // default NotifyNewest
	// Rate is requests/s for the scope, every process and run on it
	// together; default 5; below 0: unlimited (for kommo-sim).
	Rate    float64
	Workers int // concurrent conversations in this process; default 8

	Lease         time.Duration // conversation lease; default 60s
	Heartbeat     time.Duration // process heartbeat and lease renewal; default 1s (4 missed: the process is gone)
	ReconcileWait time.Duration // how long after an in-doubt attempt a message may still appear in history; default 10s
	MaxAttempts   int           // failed attempts in a row at one message (5xx, network) before the run stops; default 8
	BackoffBase   time.Duration // first retry delay; default 1s
	BackoffMax    time.Duration // longest retry delay; default 60s
	DefaultPause  time.Duration // pause on a 429 that gives no retry-after; default 60s
	BatchSize     int           // staging batch; default 10000
	DBOutageLimit time.Duration // how long sending waits for a lost database before the run stops; default 5m

	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.ScopeID == "" || c.Source.Label == "" {
		return errors.New("importer: ScopeID and Source.Label are required")
	}
	if c.Run == "" {
		if c.Source.Stream {
			return errors.New("importer: a stream source needs a run name")
		}
		c.Run = DerivedRunName(c.ScopeID, c.Source)
	}
	if c.Notify == "" {
		c.Notify = NotifyNewest
	}
	if !c.Notify.Valid() {
		return fmt.Errorf("importer: unknown notify mode %q", c.Notify)
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

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// DerivedRunName is the run name used when none is given: a readable base
// (the file's or table's name) and a hash of the scope and the source's
// label and version, so the same command on the same input names the same
// run and a new export (another version) a new one.
func DerivedRunName(scope string, src sources.Identity) string {
	sum := sha256.Sum256([]byte(scope + "\n" + src.Label + "\n" + src.Version))
	base := strings.Trim(unsafeName.ReplaceAllString(src.Base, "-"), "-")
	if len(base) > 40 {
		base = base[:40]
	}
	if base == "" {
		base = "run"
	}
	return base + "-" + hex.EncodeToString(sum[:4])
}

// Importer works one run. Several Importers (in one process or many) may
// work the same run at once.
type Importer struct {
	cfg     Config
	named   bool // cfg.Run was given, not derived
	pool    *pgxpool.Pool
	api     API
	limiter *Limiter
	log     *slog.Logger
	procID  string
	sess    session

	activeMu sync.Mutex
	active   map[string]string // lease owner (worker) -> the conversation it works now

	stats      counters
	throughput meter
}

// New returns an Importer for cfg. api must not pace its requests: the
// importer paces every attempt it makes to keep the scope's rate.
func New(pool *pgxpool.Pool, api API, cfg Config) (*Importer, error) {
	named := cfg.Run != ""
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	limiter := NewLimiter(cfg.Rate)
	return &Importer{
		cfg:     cfg,
		named:   named,
		pool:    pool,
		api:     pacedAPI{api: api, limiter: limiter},
		limiter: limiter,
		log:     cfg.Logger,
		procID:  fmt.Sprintf("%s/%d/%s", strings.ReplaceAll(host, "#", "_"), os.Getpid(), hex.EncodeToString(b[:])), // "#" separates the worker in lease owners
		sess:    session{key: newLockKey()},
		active:  map[string]string{},
	}, nil
}

// Limiter is the process's rate limiter, for metrics.
//
// Deprecated: temporary, until metrics read Progress.
func (im *Importer) Limiter() *Limiter { return im.limiter }

// RunName is the run's name: as given, or derived from the scope and source.
func (im *Importer) RunName() string { return im.cfg.Run }

// pacedAPI takes a slot of the rate schedule before every attempt.
type pacedAPI struct {
	api     API
	limiter *Limiter
}

func (p pacedAPI) SendMessage(ctx context.Context, m *chatsapi.Payload) (*chatsapi.SendResult, error) {
	if err := p.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	return p.api.SendMessage(ctx, m)
}

func (p pacedAPI) CreateChat(ctx context.Context, conv string, user chatsapi.Participant) (*chatsapi.Chat, error) {
	if err := p.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	return p.api.CreateChat(ctx, conv, user)
}

func (p pacedAPI) History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error) {
	if err := p.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	return p.api.History(ctx, chatID, offset, limit)
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

const upsertRun = `
INSERT INTO kommo_import_runs (name, scope_id, source, source_version, notify, rate)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET rate = EXCLUDED.rate, updated_at = now()
RETURNING scope_id, source, source_version, notify, staging_done, abandoned_at IS NOT NULL`

// openRun creates the run row, or checks that an existing one is the same job.
func (im *Importer) openRun(ctx context.Context) error {
	var scope, source, version, notify string
	var staged, abandoned bool
	err := im.pool.QueryRow(ctx, upsertRun, im.cfg.Run, im.cfg.ScopeID, im.cfg.Source.Label, im.cfg.Source.Version, im.cfg.Notify, im.cfg.Rate).
		Scan(&scope, &source, &version, &notify, &staged, &abandoned)
	if err != nil {
		return fmt.Errorf("open run %s: %w", im.cfg.Run, err)
	}
	if abandoned {
		return fmt.Errorf("run %s: %w", im.cfg.Run, ErrRunAbandoned)
	}
	mismatch := func(field, have, want string) error {
		return &MismatchError{Run: im.cfg.Run, Field: field, Have: have, Want: want, StagingDone: staged}
	}
	switch {
	case scope != im.cfg.ScopeID:
		return mismatch("scope", scope, im.cfg.ScopeID)
	case source != im.cfg.Source.Label:
		return mismatch("source", source, im.cfg.Source.Label)
	case version != im.cfg.Source.Version:
		return mismatch("source version", version, im.cfg.Source.Version)
	case notify != string(im.cfg.Notify):
		return mismatch("notify", notify, string(im.cfg.Notify))
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
	defer im.unregister(context.WithoutCancel(ctx))

	// Staging resumes from its last committed batch, so a lost database
	// connection is waited out by starting it again.
	err = im.withDB(ctx, "staging", func(ctx context.Context) error { return im.stage(ctx, soft) }) // stages, then plans
	var sendStart time.Time
	if err == nil {
		sendStart = time.Now()
		err = im.send(ctx, soft)
	}
	im.unregister(context.WithoutCancel(ctx))
	var sum *Summary
	// After a hard stop the summary gets a moment, not an outage's wait:
	// the database may be what is down.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	runErr := err
	summarize := func(ctx context.Context) (serr error) {
		sum, serr = im.summarize(ctx, started, sendStart, runErr)
		return serr
	}
	var serr error
	if ctx.Err() != nil {
		serr = summarize(sctx)
	} else {
		serr = im.withDB(sctx, "summary", summarize)
	}
	if serr != nil && err == nil {
		err = serr
	}
	if sum != nil {
		sum.Outcome = outcomeOf(sum, err)
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

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
