package importer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RunStatus is what the database knows of a run.
type RunStatus struct {
	Name          string   `json:"run"`
	ScopeID       string   `json:"scope_id"`
	Source        string   `json:"source"`
	SourceVersion string   `json:"source_version,omitempty"`
	Notify        Notify   `json:"notify"`
	Rate          float64  `json:"rate"`
	State         RunState `json:"state"`
	// Live: a live process works the run now (its session holds its lock
	// and its heartbeat is recent); LiveProcesses lists them.
	Live          bool          `json:"live"`
	Processes     int64         `json:"processes"` // live processes
	LiveProcesses []ProcessInfo `json:"live_processes,omitempty"`
	StagingDone   bool          `json:"staging_done"`
	StagedLine    int64         `json:"staged_line"`
	Records       int64         `json:"records"`     // valid records read from the source
	Staged        int64         `json:"staged"`      // messages this run added
	KnownSent     int64         `json:"known_sent"`  // skipped: the scope already had them sent
	KnownOther    int64         `json:"known_other"` // skipped: another run of the scope holds them
	TakenOver     int64         `json:"taken_over"`  // taken over from runs nobody works any more
	Duplicates    int64         `json:"duplicates"`  // identical repeats in the input
	Rejected      int64         `json:"rejected"`
	Pending       int64         `json:"pending"`
	Sending       int64         `json:"sending"` // in doubt until reconciled
	Sent          int64         `json:"sent"`
	Failed        int64         `json:"failed"`
	Reconciled    int64         `json:"reconciled"`     // sent messages found in history after an in-doubt attempt
	Parked        int64         `json:"parked"`         // conversations waiting for a retry or a reconcile window
	QuotesDropped int64         `json:"quotes_dropped"` // replies/forwards sent without a quote the export does not hold
	// UnknownFields counts the records carrying each input field that is
	// not part of the Chats API payload (and so was not sent).
	UnknownFields map[string]int64 `json:"unknown_fields,omitempty"`
	// Skipped counts, by reason, what the source held that was not
	// imported as it stands (sources.Stats.Skipped: group chats, service
	// messages, media without a file, ...); Conversations the distinct
	// conversations among the valid records read.
	Skipped       map[string]int64 `json:"skipped,omitempty"`
	Conversations int64            `json:"conversations"`
	PausedUntil   time.Time        `json:"paused_until,omitzero"` // the scope's 429 pause
	StopReason    string           `json:"stop_reason,omitempty"` // why the last invocation ended early
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
	ProgressAt    time.Time        `json:"progress_at,omitzero"` // the last delivery by any process
	FinishedAt    time.Time        `json:"finished_at,omitzero"`
	AbandonedAt   time.Time        `json:"abandoned_at,omitzero"`
	OtherRuns     []string         `json:"other_runs,omitempty"` // runs holding this run's known_other msgids
}

// ProcessInfo is a live process working a run.
type ProcessInfo struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

const selectStatus = `
SELECT r.name, r.scope_id, r.source, r.source_version, r.notify, r.rate, r.staging_done, r.planned, r.staged_line,
       r.records, r.staged, r.known_sent, r.known_other, r.taken_over, r.duplicates, r.rejected,
       COALESCE(s.pending, 0), COALESCE(s.sending, 0), COALESCE(s.sent, 0), COALESCE(s.failed, 0), COALESCE(s.reconciled, 0),
       (SELECT count(*) FROM kommo_import_conversations c WHERE c.run_name = r.name AND NOT c.done AND c.not_before > now()),
       r.quotes_dropped, r.unknown_fields, r.skipped, r.conversations, COALESCE(r.stop_reason, ''),
       (SELECT count(*) FROM kommo_import_live_processes p WHERE p.run_name = r.name),
       COALESCE((SELECT paused_until FROM kommo_import_pacer WHERE scope_id = r.scope_id), 'epoch'),
       r.created_at, r.updated_at, COALESCE(r.progress_at, 'epoch'), COALESCE(r.finished_at, 'epoch'), COALESCE(r.abandoned_at, 'epoch')
FROM kommo_import_runs r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE state = 'pending')  AS pending,
           count(*) FILTER (WHERE state = 'sending')  AS sending,
           count(*) FILTER (WHERE state = 'sent')     AS sent,
           count(*) FILTER (WHERE state = 'failed')   AS failed,
           count(*) FILTER (WHERE reconciled)         AS reconciled
    FROM kommo_import_messages m WHERE m.run_name = r.name
) s ON true`

const selectLiveProcesses = `
SELECT process_id, host, pid, started_at, heartbeat_at FROM kommo_import_live_processes
WHERE run_name = $1 ORDER BY started_at, process_id`

const selectOtherRuns = `
SELECT DISTINCT o.run_name
FROM kommo_import_runs r
JOIN kommo_import_messages o ON o.scope_id = r.scope_id AND o.run_name <> r.name AND o.state IN ('pending', 'sending', 'failed')
WHERE r.name = $1 AND r.known_other > 0
ORDER BY 1 LIMIT 10`

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
	if st.Live {
		rows, err := pool.Query(ctx, selectLiveProcesses, name)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
		st.LiveProcesses, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProcessInfo, error) {
			var p ProcessInfo
			err := r.Scan(&p.ID, &p.Host, &p.PID, &p.StartedAt, &p.HeartbeatAt)
			return p, err
		})
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
	}
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
		&s.Records, &s.Staged, &s.KnownSent, &s.KnownOther, &s.TakenOver, &s.Duplicates, &s.Rejected,
		&s.Pending, &s.Sending, &s.Sent, &s.Failed, &s.Reconciled, &s.Parked,
		&s.QuotesDropped, &s.UnknownFields, &s.Skipped, &s.Conversations, &s.StopReason, &s.Processes,
		&s.PausedUntil, &s.CreatedAt, &s.UpdatedAt, &s.ProgressAt, &s.FinishedAt, &s.AbandonedAt)
	if err != nil {
		return s, err
	}
	for _, t := range []*time.Time{&s.PausedUntil, &s.ProgressAt, &s.FinishedAt, &s.AbandonedAt} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	if s.PausedUntil.Before(time.Now()) {
		s.PausedUntil = time.Time{}
	}
	if len(s.UnknownFields) == 0 {
		s.UnknownFields = nil
	}
	if len(s.Skipped) == 0 {
		s.Skipped = nil
	}
	s.Live = s.Processes > 0
	s.State = runState(&s, planned)
	return s, nil
}

func runState(s *RunStatus, planned bool) RunState {
	left := !s.StagingDone || !planned || s.Pending+s.Sending > 0
	switch {
	case !s.AbandonedAt.IsZero():
		return RunAbandoned
	case left && !s.Live:
		return RunInterrupted
	case !s.StagingDone || !planned:
		return RunStaging
	case left:
		return RunSending
	case s.Failed > 0 || s.Rejected > 0:
		return RunIncomplete
	}
	return RunDone
}

// Summary is a run's status after an invocation of Run, with what this
// invocation did.
type Summary struct {
	RunStatus
	Outcome            Outcome `json:"outcome"`
	SentNow            int64   `json:"sent_now"`             // delivered by this invocation
	FailedNow          int64   `json:"failed_now"`           // refused by the API in this invocation
	InDoubt            int64   `json:"in_doubt_reconciled"`  // in-doubt messages looked up in history
	InDoubtFound       int64   `json:"in_doubt_found"`       // ... and found there (not sent again)
	Requests           int64   `json:"http_requests"`        // every HTTP attempt, look-ups included
	RequestsPerMessage float64 `json:"requests_per_message"` // Requests / messages delivered now
	RateLimited        int64   `json:"rate_limited"`         // 429 answers
	// SlotsGivenUp counts slots of the rate schedule this invocation missed
	// by more than a few milliseconds (a loaded machine, a slow database)
	// and gave up rather than crowd the API's second: rate lost.
	SlotsGivenUp   int64   `json:"slots_given_up"`
	Retries        int64   `json:"retries"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	EffectiveRate  float64 `json:"effective_rate"` // messages delivered per second of sending
}

// markEnded records how an invocation ended: the reason it stopped early
// (none when it did not), and when the run finished, once nothing is left.
const markEnded = `
UPDATE kommo_import_runs SET stop_reason = NULLIF($2, ''), updated_at = now(),
    finished_at = CASE
        WHEN finished_at IS NULL AND staging_done AND planned
             AND NOT EXISTS (SELECT 1 FROM kommo_import_messages WHERE run_name = $1 AND state IN ('pending', 'sending'))
        THEN now() ELSE finished_at END
WHERE name = $1`

func (im *Importer) summarize(ctx context.Context, started, sendStart time.Time, runErr error) (*Summary, error) {
	reason := ""
	if runErr != nil {
		reason = cleanText(runErr.Error())
	}
	if _, err := im.pool.Exec(ctx, markEnded, im.cfg.Run, reason); err != nil {
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
		Requests:       im.pacer.Requests(),
		RateLimited:    im.stats.rateLimited.Load(),
		SlotsGivenUp:   im.pacer.Late(),
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
	phase           atomic.Value // Phase
	waiting         atomic.Value // string: why workers idle while work remains
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
	Phase Phase
	Read  int64 // records read from the source (staging)
	Done  int64 // messages of the run sent or failed, by every process and invocation
	Total int64 // messages the run holds
	// SentNow is what this invocation delivered.
	SentNow int64
	// Throughput is the messages delivered per second over the last minute
	// (less while the run is younger), by every process of the run.
	Throughput float64
	// Rate is the request rate in force for the scope (after 429
	// step-downs), requests/s; 0: unlimited.
	Rate        float64
	PausedUntil time.Time // the scope's 429 pause, when one is in force
	Processes   int64     // live processes working the run
	DBDown      bool      // sending waits for the database to come back
	// Requests is the slots of the rate schedule this process used: every
	// HTTP attempt, look-ups and retries included. RateWait is the time
	// spent waiting for them, pauses included.
	Requests int64
	RateWait time.Duration
	// Waiting says why the workers have nothing to send while messages
	// remain (conversations held by another process, parked in doubt), or "".
	Waiting string
}

// Progress returns a snapshot of the run's progress. Safe to call at any time.
func (im *Importer) Progress() Progress {
	phase, _ := im.stats.phase.Load().(Phase)
	if phase == "" {
		phase = PhaseStarting
	}
	waiting, _ := im.stats.waiting.Load().(string)
	return Progress{
		Phase:       phase,
		Read:        im.stats.read.Load(),
		Done:        im.stats.baseDone.Load() + im.stats.sent.Load() + im.stats.failed.Load(),
		Total:       im.stats.total.Load(),
		SentNow:     im.stats.sent.Load(),
		Throughput:  im.throughput.rate(time.Now()),
		Rate:        im.pacer.Rate(),
		PausedUntil: im.pacer.PausedUntil(),
		Processes:   im.stats.processes.Load(),
		DBDown:      im.stats.dbDown.Load(),
		Waiting:     waiting,
		Requests:    im.pacer.Requests(),
		RateWait:    im.pacer.Waited(),
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
	// Done counts this process's deliveries on top of the base: the base
	// is what the database has, less what this process added to it.
	im.stats.baseDone.Store(done - im.stats.sent.Load() - im.stats.failed.Load())
	return nil
}
