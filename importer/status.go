package importer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RunStatus is what the database knows of a run.
type RunStatus struct {
	Name          string    `json:"run"`
	ScopeID       string    `json:"scope_id"`
	Source        string    `json:"source"`
	SourceVersion string    `json:"source_version,omitempty"`
	Notify        string    `json:"notify"`
	Rate          float64   `json:"rate"`
	State         string    `json:"state"` // staging, sending, done, incomplete
	StagingDone   bool      `json:"staging_done"`
	StagedLine    int64     `json:"staged_line"`
	Records       int64     `json:"records"`     // valid records read from the source
	Staged        int64     `json:"staged"`      // messages this run holds
	KnownSent     int64     `json:"known_sent"`  // skipped: the scope already had them sent
	KnownOther    int64     `json:"known_other"` // skipped: another run of the scope holds them
	Duplicates    int64     `json:"duplicates"`  // identical repeats in the input
	Rejected      int64     `json:"rejected"`
	Pending       int64     `json:"pending"`
	Sending       int64     `json:"sending"` // in doubt until reconciled
	Sent          int64     `json:"sent"`
	Failed        int64     `json:"failed"`
	Reconciled    int64     `json:"reconciled"` // sent messages found in history after an in-doubt attempt
	Processes     int64     `json:"processes"`  // live processes working the run
	PausedUntil   time.Time `json:"paused_until,omitzero"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	FinishedAt    time.Time `json:"finished_at,omitzero"`
	OtherRuns     []string  `json:"other_runs,omitempty"` // runs holding this run's known_other msgids
}

const selectStatus = `
SELECT r.name, r.scope_id, r.source, r.source_version, r.notify, r.rate, r.staging_done, r.planned, r.staged_line,
       r.records, r.staged, r.known_sent, r.known_other, r.duplicates, r.rejected,
       COALESCE(s.pending, 0), COALESCE(s.sending, 0), COALESCE(s.sent, 0), COALESCE(s.failed, 0), COALESCE(s.reconciled, 0),
       (SELECT count(*) FROM kommo_import_processes p WHERE p.run_name = r.name AND p.heartbeat_at > now() - interval '30 seconds'),
       COALESCE(r.paused_until, 'epoch'), r.created_at, r.updated_at, COALESCE(r.finished_at, 'epoch')
FROM kommo_import_runs r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE state = 'pending')  AS pending,
           count(*) FILTER (WHERE state = 'sending')  AS sending,
           count(*) FILTER (WHERE state = 'sent')     AS sent,
           count(*) FILTER (WHERE state = 'failed')   AS failed,
           count(*) FILTER (WHERE reconciled)         AS reconciled
    FROM kommo_import_messages m WHERE m.run_name = r.name
) s ON true`

const selectOtherRuns = `
SELECT DISTINCT o.run_name
FROM kommo_import_runs r
JOIN kommo_import_messages o ON o.scope_id = r.scope_id AND o.run_name <> r.name AND o.state IN ('pending', 'sending', 'failed')
WHERE r.name = $1 AND r.known_other > 0
ORDER BY 1 LIMIT 10`

// ErrNoRun is returned for a run name the database does not have.
var ErrNoRun = errors.New("no such run")

// Status returns a run's status.
func Status(ctx context.Context, pool *pgxpool.Pool, name string) (*RunStatus, error) {
	rows, err := pool.Query(ctx, selectStatus+` WHERE r.name = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	list, err := pgx.CollectRows(rows, scanStatus)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%w %q", ErrNoRun, name)
	}
	st := &list[0]
	if st.KnownOther > 0 {
		rows, err := pool.Query(ctx, selectOtherRuns, name)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
		if st.OtherRuns, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
	}
	return st, nil
}

// Runs returns every run, newest first.
func Runs(ctx context.Context, pool *pgxpool.Pool) ([]RunStatus, error) {
	rows, err := pool.Query(ctx, selectStatus+` ORDER BY r.created_at DESC, r.name`)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanStatus)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return list, nil
}

func scanStatus(row pgx.CollectableRow) (RunStatus, error) {
	var s RunStatus
	var planned bool
	err := row.Scan(&s.Name, &s.ScopeID, &s.Source, &s.SourceVersion, &s.Notify, &s.Rate, &s.StagingDone, &planned, &s.StagedLine,
		&s.Records, &s.Staged, &s.KnownSent, &s.KnownOther, &s.Duplicates, &s.Rejected,
		&s.Pending, &s.Sending, &s.Sent, &s.Failed, &s.Reconciled, &s.Processes,
		&s.PausedUntil, &s.CreatedAt, &s.UpdatedAt, &s.FinishedAt)
	if err != nil {
		return s, err
	}
	for _, t := range []*time.Time{&s.PausedUntil, &s.FinishedAt} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	if s.PausedUntil.Before(time.Now()) {
		s.PausedUntil = time.Time{}
	}
	switch {
	case !s.StagingDone || !planned:
		s.State = "staging"
	case s.Pending+s.Sending > 0:
		s.State = "sending"
	case s.Failed > 0 || s.Rejected > 0:
		s.State = "incomplete"
	default:
		s.State = "done"
	}
	return s, nil
}

// Summary is a run's status after an invocation of Run, with what this
// invocation did.
type Summary struct {
	RunStatus
	Outcome            Outcome `json:"outcome"`
	StopReason         string  `json:"stop_reason,omitempty"`
	SentNow            int64   `json:"sent_now"`             // delivered by this invocation
	FailedNow          int64   `json:"failed_now"`           // refused by the API in this invocation
	InDoubt            int64   `json:"in_doubt_reconciled"`  // in-doubt messages looked up in history
	InDoubtFound       int64   `json:"in_doubt_found"`       // ... and found there (not sent again)
	Requests           int64   `json:"http_requests"`        // every HTTP attempt, look-ups included
	RequestsPerMessage float64 `json:"requests_per_message"` // Requests / messages delivered now
	RateLimited        int64   `json:"rate_limited"`         // 429 answers
	Retries            int64   `json:"retries"`
	ElapsedSeconds     float64 `json:"elapsed_seconds"`
	EffectiveRate      float64 `json:"effective_rate"` // messages delivered per second of sending
}

const markFinished = `
UPDATE kommo_import_runs SET finished_at = now(), updated_at = now()
WHERE name = $1 AND finished_at IS NULL AND staging_done AND planned
  AND NOT EXISTS (SELECT 1 FROM kommo_import_messages WHERE run_name = $1 AND state IN ('pending', 'sending'))`

func (im *Importer) summarize(ctx context.Context, started, sendStart time.Time) (*Summary, error) {
	if _, err := im.pool.Exec(ctx, markFinished, im.cfg.Run); err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	st, err := Status(ctx, im.pool, im.cfg.Run)
	if err != nil {
		return nil, err
	}
	s := &Summary{
		RunStatus:      *st,
		SentNow:        im.stats.sent.Load(),
		FailedNow:      im.stats.failed.Load(),
		InDoubt:        im.stats.reconciled.Load(),
		InDoubtFound:   im.stats.reconciledFound.Load(),
		Requests:       im.limiter.Requests(),
		RateLimited:    im.stats.rateLimited.Load(),
		Retries:        im.stats.retries.Load(),
		ElapsedSeconds: time.Since(started).Seconds(),
	}
	if delivered := s.SentNow + s.InDoubtFound; delivered > 0 {
		s.RequestsPerMessage = float64(s.Requests) / float64(delivered)
	}
	if !sendStart.IsZero() {
		if d := time.Since(sendStart).Seconds(); d > 0 {
			s.EffectiveRate = float64(s.SentNow) / d
		}
	}
	return s, nil
}

// counters are this invocation's running totals.
type counters struct {
	phase           atomic.Value // string
	read            atomic.Int64 // records read from the source
	sent            atomic.Int64
	failed          atomic.Int64
	reconciled      atomic.Int64
	reconciledFound atomic.Int64
	retries         atomic.Int64
	rateLimited     atomic.Int64
	processes       atomic.Int64
	dbDown          atomic.Bool
	baseDone        atomic.Int64 // sent or failed before sending started
	total           atomic.Int64 // messages of the run
}

// Progress is a snapshot for progress bars and logs.
type Progress struct {
	Phase       string
	Read        int64 // records read from the source (staging)
	Done        int64 // messages sent or failed, all invocations
	Total       int64 // messages the run holds
	SentNow     int64
	Rate        float64 // requests/s in force
	PausedUntil time.Time
	Processes   int64
	DBDown      bool // sending is paused until the database is back
}

// Progress returns a snapshot of the run's progress. Safe to call at any time.
func (im *Importer) Progress() Progress {
	phase, _ := im.stats.phase.Load().(string)
	if phase == "" {
		phase = "starting"
	}
	return Progress{
		Phase:       phase,
		Read:        im.stats.read.Load(),
		Done:        im.stats.baseDone.Load() + im.stats.sent.Load() + im.stats.failed.Load(),
		Total:       im.stats.total.Load(),
		SentNow:     im.stats.sent.Load(),
		Rate:        im.limiter.Rate(),
		PausedUntil: im.limiter.PausedUntil(),
		Processes:   im.stats.processes.Load(),
		DBDown:      im.stats.dbDown.Load(),
	}
}

const selectProgressBase = `
SELECT count(*), count(*) FILTER (WHERE state IN ('sent', 'failed'))
FROM kommo_import_messages WHERE run_name = $1`

func (im *Importer) loadProgressBase(ctx context.Context) error {
	var total, done int64
	if err := im.pool.QueryRow(ctx, selectProgressBase, im.cfg.Run).Scan(&total, &done); err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	im.stats.total.Store(total)
	im.stats.baseDone.Store(done)
	return nil
}
