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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/contacts"
	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// API is what the importer needs of the Chats API client. The client must not
// pace its requests itself: the importer takes a slot of the scope's rate
// schedule before every attempt it makes.
type API interface {
	SendMessage(ctx context.Context, p *wire.Payload) (*chatsapi.SendResult, error)
	CreateChat(ctx context.Context, conversationID string, user wire.Participant) (*chatsapi.Chat, error)
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

	// OnFailure says what a message the API refuses for good does to the
	// rest of its conversation: OnFailureHold (default) keeps them back
	// until retry sends it (order is the tool's promise);
	// OnFailureContinue sends them without it.
	OnFailure string
	// MaxRejects is how many new rejected records (not rejected by an
	// earlier run of the scope too, not acknowledged) the run allows before
	// it counts as incomplete; below 0: the run's own (retry). Default 0.
	MaxRejects int64
	// Older says what planning does with the run's messages that are older
	// than what their chat already shows (a backfill): OlderSend (default:
	// say so and send them, after the chat's newer ones) or OlderSkip (give
	// them up, with the reason).
	Older string
	// RequestTimeout is the longest an HTTP request of this process travels
	// (the client's timeout; default 30s): another process does not send an
	// in-doubt message of this one's again before this process's liveness
	// deadline plus RequestTimeout.
	RequestTimeout time.Duration

	Lease         time.Duration // conversation lease; default 60s
	Heartbeat     time.Duration // process heartbeat and lease renewal; default 1s (4 missed: the process is gone)
	ReconcileWait time.Duration // how long after an in-doubt attempt a message may still appear in history; default 10s
	MaxAttempts   int           // failed attempts in a row at one message (5xx, network) before the run stops; default 8
	BackoffBase   time.Duration // first retry delay; default 1s
	BackoffMax    time.Duration // longest retry delay; default 60s
	DefaultPause  time.Duration // pause on a 429 that gives no retry-after; default 60s
	BatchSize     int           // staging batch; default 10000
	DBOutageLimit time.Duration // how long sending waits for a lost database before the run stops; default 5m

	// Media puts local files where Kommo fetches them (--media-store or
	// --media-base-url; media.go). nil: none, and a run whose messages name
	// local files stops before sending (MediaNeededError).
	Media MediaStore
	// MediaWeb: Media is the operator's web server (--media-base-url),
	// checked against a file of the run once it is staged.
	MediaWeb bool
	// MediaUploads bounds the uploader's Puts at once; default
	// media.DefaultConcurrency (the store bounds every Put of it too).
	MediaUploads int
	// MediaAhead bounds how many media messages the uploader walks ahead
	// of the sending; default DefaultMediaAhead.
	MediaAhead int
	// MediaMissingText: a local file that cannot be used when its message's
	// turn comes goes out as its text placeholder (--media-missing text);
	// otherwise the message fails with the reason.
	MediaMissingText bool

	// Contacts links each chat to its client's contact before its first
	// message (--link-contacts; contacts.go); nil: no linking.
	Contacts *contacts.RunConfig

	Logger *slog.Logger
	// Clock is the time the pacer and the windows read; nil: the wall clock.
	Clock Clock
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
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	orDefault(&c.Workers, DefaultWorkers)
	orDefault(&c.RequestTimeout, DefaultRequestTimeout)
	switch c.Older {
	case "", OlderSend, OlderSkip:
	default:
		return fmt.Errorf("importer: unknown Older %q", c.Older)
	}
	switch c.OnFailure {
	case "":
		c.OnFailure = OnFailureHold
	case OnFailureHold, OnFailureContinue:
	default:
		return fmt.Errorf("importer: unknown OnFailure %q", c.OnFailure)
	}
	orDefault(&c.Lease, DefaultLease)
	orDefault(&c.Heartbeat, DefaultHeartbeat)
	orDefault(&c.ReconcileWait, DefaultReconcileWait)
	orDefault(&c.DBOutageLimit, DefaultDBOutageLimit)
	orDefault(&c.BatchSize, DefaultBatchSize)
	orDefault(&c.MediaUploads, media.DefaultConcurrency)
	orDefault(&c.MediaAhead, DefaultMediaAhead)
	retryDefaults(&c.MaxAttempts, &c.BackoffBase, &c.BackoffMax, &c.DefaultPause)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
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
	named   bool   // cfg.Run was given, not derived
	base    string // the derived name, before a re-sync generation suffix
	pool    *pgxpool.Pool
	q       *store.Queries
	api     API // unpaced: every attempt takes a pacer slot first
	pacer   *pacer
	att     *attempter
	log     *slog.Logger
	procID  string
	sess    session
	idleLog idleLogger

	// link is this process's contact linking (nil without Contacts);
	// runLinks: the run links chats (this invocation's, or as the run
	// recorded it for a retry), so a linked chat's messages go out silent.
	link     *linker
	runLinks bool

	attempts atomic.Int64 // numbers this process's attempts (markSending's id)

	activeMu sync.Mutex
	active   map[string]string // lease owner (worker) -> the conversation it works now

	stats      counters
	settling   settling // whether the API shows messages late (send.go)
	throughput meter
	cycles     cycles     // the workers' busy time, for the pool's size
	media      mediaState // media.go
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
	im := &Importer{
		cfg:    cfg,
		named:  named,
		base:   cfg.Run,
		pool:   pool,
		q:      store.New(pool),
		api:    api,
		log:    cfg.Logger,
		procID: fmt.Sprintf("%s/%d/%s", strings.ReplaceAll(host, "#", "_"), os.Getpid(), hex.EncodeToString(b[:])), // "#" separates the worker in lease owners
		sess:   session{key: newLockKey()},
		active: map[string]string{},
	}
	im.pacer = newPacer(im.q, cfg.Clock, cfg.ScopeID, cfg.Rate, im.withDB)
	im.pacer.workers = cfg.Workers
	im.att = &attempter{pacer: im.pacer, log: im.log,
		policy: retryPolicy{backoffBase: cfg.BackoffBase, backoffMax: cfg.BackoffMax, defaultPause: cfg.DefaultPause}}
	if cfg.Contacts != nil {
		l, err := newLinker(im, cfg.Contacts)
		if err != nil {
			return nil, err
		}
		im.link = l
	}
	return im, nil
}

// RunName is the run's name: as given, or derived from the scope and source.
func (im *Importer) RunName() string { return im.cfg.Run }

// Outcome says how a run ended.
type Outcome string

// The outcomes of Run.
const (
	OutcomeDone        Outcome = "done"        // nothing left to send; no failures, no rejects
	OutcomeIncomplete  Outcome = "incomplete"  // nothing left to send, but some messages failed or records were rejected
	OutcomeInterrupted Outcome = "interrupted" // stopped early; running again resumes
	OutcomeStopped     Outcome = "stopped"     // stopped for the operator: account blocked, signature refused, clock skew, the main API refusing the token
	OutcomeFailed      Outcome = "failed"      // ended by an error another attempt would meet again: an unreadable source, a mismatched run
)

// openRun creates the run row, or checks that an existing one is the same
// job. It reports whether the run has finished (nothing left to send).
func (im *Importer) openRun(ctx context.Context) (finished bool, err error) {
	row, err := im.q.OpenRun(ctx, store.RunParams{
		Name: im.cfg.Run, Scope: im.cfg.ScopeID, Source: im.cfg.Source.Label, Version: im.cfg.Source.Version,
		Notify: string(im.cfg.Notify), Rate: im.cfg.Rate, OnFailure: im.cfg.OnFailure,
		MaxRejects: im.cfg.MaxRejects, Older: im.cfg.Older,
	})
	if err != nil {
		return false, fmt.Errorf("open run %s: %w", im.cfg.Run, err)
	}
	scope, source, version, notify, staged, finished := row.Scope, row.Source, row.Version, row.Notify, row.StagingDone, row.Finished
	if row.Abandoned {
		return false, fmt.Errorf("run %s: %w", im.cfg.Run, ErrRunAbandoned)
	}
	mismatch := func(field, have, want string) error {
		return &MismatchError{Run: im.cfg.Run, Field: field, Have: have, Want: want, StagingDone: staged}
	}
	switch {
	case scope != im.cfg.ScopeID:
		return false, mismatch("scope", scope, im.cfg.ScopeID)
	case source != im.cfg.Source.Label:
		return false, mismatch("source", source, im.cfg.Source.Label)
	case notify != string(im.cfg.Notify):
		return false, mismatch("notify", notify, string(im.cfg.Notify))
	case version != im.cfg.Source.Version && staged:
		return false, mismatch("source version", version, im.cfg.Source.Version)
	case version != im.cfg.Source.Version:
		// The file changed before the run had staged it whole (a fixed
		// export in place of a truncated one): staging reads it again from
		// the start; what was staged is not staged twice.
		im.log.Info("the source changed since the run started staging it: reading it again from the start",
			"run", im.cfg.Run, "was", version, "now", im.cfg.Source.Version)
		if err := im.q.RestageVersion(ctx, im.cfg.Run, im.cfg.Source.Version); err != nil {
			return false, fmt.Errorf("open run %s: %w", im.cfg.Run, err)
		}
	case finished && im.cfg.Open != nil && im.cfg.Source.Version == "":
		// A named run of a table, a query or stdin that has finished: the
		// same name cannot tell a new export from the old one.
		return false, fmt.Errorf("run %s: %w", im.cfg.Run, ErrRunFinished)
	}
	return finished, nil
}

// settleName settles the run's name without writing anything, and reports
// whether that run exists and has finished.
func (im *Importer) settleName(ctx context.Context) (finished bool, err error) {
	if !im.named && im.cfg.Source.Version == "" {
		// A table or a query has no version to tell a new export by: once
		// its run has finished, the same command is a re-sync, a new run
		// that reads it again and sends what it gained.
		if err := im.nextGeneration(ctx); err != nil {
			return false, err
		}
	}
	return im.q.RunFinished(ctx, im.cfg.Run)
}

// nextGeneration picks the run of a derived name to work: the newest one,
// unless it has finished, then a new one after it.
func (im *Importer) nextGeneration(ctx context.Context) error {
	base := im.base
	im.cfg.Run = base
	gens, err := im.q.Generations(ctx, base)
	if err != nil {
		return fmt.Errorf("open run %s: %w", base, err)
	}
	newest, n := "", 0
	var newestFinished bool
	for _, g := range gens {
		k := 1
		if suffix, ok := strings.CutPrefix(g.Name, base+"."); ok {
			if k, err = strconv.Atoi(suffix); err != nil || k < 2 {
				continue
			}
		}
		if k > n {
			n, newest, newestFinished = k, g.Name, g.Finished
		}
	}
	switch {
	case newest == "":
	case !newestFinished:
		im.cfg.Run = newest
	default:
		im.cfg.Run = fmt.Sprintf("%s.%d", base, n+1)
		im.log.Info("the previous run of this source has finished: reading it again as a new run (a re-sync; what the scope has is not sent again)",
			"previous", newest, "run", im.cfg.Run)
	}
	return nil
}

// adoptRate makes the run's rate the scope's: refused while a live process
// sends to the scope at another (a *RateError), said when it changes.
func (im *Importer) adoptRate(ctx context.Context) error {
	if im.cfg.Rate <= 0 {
		return nil
	}
	inForce, before, err := im.q.AdoptRate(ctx, im.cfg.ScopeID, im.cfg.Rate, im.procID)
	if err != nil {
		return fmt.Errorf("rate schedule: %w", err)
	}
	if inForce != im.cfg.Rate {
		return &RateError{Scope: im.cfg.ScopeID, Rate: im.cfg.Rate, InForce: inForce}
	}
	if before != 0 && before != im.cfg.Rate {
		im.log.Warn("the scope was sent at another rate before; this run's rate is the scope's now", "was", before, "now", im.cfg.Rate)
	}
	return nil
}

// preflightAttempts bounds the preflight: an API that cannot be reached
// three times in a row, a second apart, is reported as unreachable.
const (
	preflightAttempts = 3
	preflightTimeout  = 10 * time.Second
)

// preflight makes one cheap signed request (the history of a chat that does
// not exist) before any work: it proves the API is reachable, the signature
// accepted and the scope known. An API it cannot reach is an interruption
// (CauseAPIUnreachable); a refused scope a StopError.
func (im *Importer) preflight(ctx context.Context) error {
	chat := preflightChatID()
	for failures := 0; ; failures++ {
		d, err := im.att.attempt(ctx, nil, request{returnOnPause: true, do: func(ctx context.Context) error {
			actx, cancel := context.WithTimeout(ctx, preflightTimeout)
			defer cancel()
			_, err := im.api.History(actx, chat, 0, 1)
			return err
		}}, failures)
		if err != nil {
			return err
		}
		switch d.act {
		case 0, actFail, actPause:
			// actFail: a 4xx about the request itself: the API read a
			// signed request of this scope and answered. actPause: it
			// answered 429; the pause is recorded and sending waits it out.
			return nil
		case actAbort:
			return interrupted(CauseSignal, "", d.err)
		case actStop:
			return d.err
		}
		if failures+1 >= preflightAttempts {
			return interrupted(CauseAPIUnreachable, "", d.api)
		}
		if err := im.att.sleep(ctx, nil, min(d.after, time.Second)); err != nil {
			return err
		}
	}
}

// preflightChatID is a random chat id in Kommo's UUID form.
func preflightChatID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Run stages, plans and sends the run until nothing is left or it must stop.
// Closing soft asks for a soft stop: no new conversation is claimed and no new
// message is started, the requests in flight finish and are checkpointed.
// Cancelling ctx stops at once; the database stays consistent (an interrupted
// request leaves its message in doubt, to be reconciled on resume).
func (im *Importer) Run(ctx context.Context, soft <-chan struct{}) (*Summary, error) {
	started := time.Now()
	// Nothing is written for the run until the API has answered a signed
	// request of the scope: a wrong scope, secret or URL leaves no run
	// behind to be offered for resuming. A finished run makes no request.
	var finished bool
	err := im.withDB(ctx, "start", func(ctx context.Context) (err error) {
		finished, err = im.settleName(ctx)
		return err
	})
	if err == nil && !finished {
		err = im.withDB(ctx, "start", im.adoptRate)
	}
	if err == nil && !finished {
		err = im.preflight(ctx)
	}
	if err == nil && !finished {
		err = im.preflightMedia(ctx) // media.go: the store works, before anything is written
	}
	if err == nil && !finished {
		// The token may search and link (--link-contacts).
		err = im.preflightContacts(ctx)
	}
	if err != nil {
		return nil, err
	}
	err = im.withDB(ctx, "start", func(ctx context.Context) (err error) {
		if _, err = im.openRun(ctx); err != nil {
			return err
		}
		if err := im.adoptLinkMode(ctx); err != nil {
			return err
		}
		// This invocation's story starts: an earlier one's stop reason is
		// not shown as current (summarize records this one's).
		return im.q.MarkStarted(ctx, im.cfg.Run)
	})
	if err != nil {
		return nil, err
	}
	err = im.withDB(ctx, "start", im.register)
	// The heartbeat keeps the process alive (and its leases renewed) in
	// every phase, staging included: a process cut off from the database
	// counts as gone within a few beats whatever it was doing.
	hbCtx, cancelHB := context.WithCancel(ctx)
	defer cancelHB()
	stopHB := make(chan struct{})
	hbDone := make(chan struct{})
	registered := err == nil
	go func() {
		defer close(hbDone)
		if registered {
			im.heartbeatLoop(hbCtx, stopHB)
		}
	}()
	if err == nil {
		// Staging resumes from its last committed batch, so a lost database
		// connection is waited out by starting it again.
		err = im.withDB(ctx, "staging", func(ctx context.Context) error { return im.stage(ctx, soft) }) // stages, then plans
	}
	if err == nil {
		err = im.preflightMediaWeb(ctx) // --media-base-url against a staged file, before any send
	}
	var sendStart time.Time
	if err == nil {
		sendStart = time.Now()
		err = im.send(ctx, soft)
	}
	// The beat in flight ends before the process unregisters (cancelled,
	// it would drop the session and leave the row: heartbeatLoop), unless
	// the database does not answer it.
	close(stopHB)
	select {
	case <-hbDone:
	case <-time.After(hbFinish):
		cancelHB()
		<-hbDone
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
	var mediaErr *MediaError
	var refused *ContactsError
	switch {
	case errors.As(err, &stop), errors.As(err, &refused), errors.As(err, &mediaErr) && mediaErr.Refused():
		return OutcomeStopped
	case errors.Is(err, ErrInterrupted):
		return OutcomeInterrupted
	case err != nil:
		return OutcomeFailed
	case s.Failed > 0 || s.RejectsFail():
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

func isNoRows(err error) bool { return store.IsNoRows(err) }
