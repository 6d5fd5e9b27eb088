package importer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
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
	// RejectedKnown of Rejected were rejected by an earlier run of the
	// scope too (the same record, or the same msgid): reported then, they
	// do not fail this run; RejectedAcked of the others were acknowledged
	// (runs ack); RejectedNew are the rest, and the run allows MaxRejects
	// of them (--max-rejects) before it is incomplete.
	RejectedKnown int64 `json:"rejected_known"`
	RejectedAcked int64 `json:"rejected_acked"`
	RejectedNew   int64 `json:"rejected_new"`
	// RejectsKnownFrom names (at most 10) the earlier runs that rejected the
	// known ones.
	RejectsKnownFrom []string `json:"rejects_known_from,omitempty"`
	MaxRejects       int64    `json:"max_rejects"`
	// Older counts the run's messages planning found older than what their
	// chat already showed (a backfill), in OlderConversations chats;
	// OlderMode is what the run does with them: send (after the chat's
	// newer ones) or skip (given up).
	Older              int64  `json:"older"`
	OlderConversations int64  `json:"older_conversations"`
	OlderMode          string `json:"older_mode"`
	Pending            int64  `json:"pending"`
	Sending            int64  `json:"sending"` // in doubt until reconciled
	Sent               int64  `json:"sent"`
	Failed             int64  `json:"failed"`
	GivenUp            int64  `json:"given_up"` // given up by retry --skip or --older skip: never sent
	// HandedOver were staged by this run and taken over by a later run of
	// the scope (this one had stopped), which sends them.
	HandedOver int64 `json:"handed_over"`
	// Messages breaks the counts down so that they add up to what the run
	// staged and took over (truth.go).
	Messages MessageCounts `json:"messages"`
	// Held conversations wait behind a failed message (OnFailure hold):
	// HeldMessages of their messages are not sent until retry.
	Held          int64  `json:"held_conversations"`
	HeldMessages  int64  `json:"held_messages"`
	OnFailure     string `json:"on_failure"`
	Reconciled    int64  `json:"reconciled"`     // sent messages found in history after an in-doubt attempt
	Parked        int64  `json:"parked"`         // conversations waiting for a retry or a reconcile window
	QuotesDropped int64  `json:"quotes_dropped"` // replies/forwards sent without a quote the export does not hold
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
	StoppedAt     time.Time        `json:"stopped_at,omitzero"`   // when the last invocation that recorded its end ended
	// Lost is a process that died after StoppedAt without recording its
	// end (kill -9, a crash, a host cut off): its invocation's story ends
	// there, not with StopReason (nil: none).
	Lost        *LostProcess `json:"lost_process,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	ProgressAt  time.Time    `json:"progress_at,omitzero"` // the last delivery by any process
	FinishedAt  time.Time    `json:"finished_at,omitzero"`
	AbandonedAt time.Time    `json:"abandoned_at,omitzero"`
	OtherRuns   []string     `json:"other_runs,omitempty"` // runs holding this run's known_other msgids
	// Media: what became of the local files its messages name (media.go);
	// nil when they name none.
	Media *MediaStatus `json:"media,omitempty"`
	// Contacts counts the chats linked to contacts, created, ambiguous and
	// unlinked, for a run that links them (--link-contacts); nil otherwise.
	Contacts *ContactLinks `json:"contacts,omitempty"`
}

// ProcessInfo is a live process working a run.
type ProcessInfo struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// Status returns a run's status.
func Status(ctx context.Context, pool *pgxpool.Pool, name string) (*RunStatus, error) {
	q := store.New(pool)
	row, ok, err := q.RunStatus(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrNoRun, name)
	}
	st := statusOf(row)
	if st.Live {
		procs, err := q.LiveProcesses(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
		for _, p := range procs {
			st.LiveProcesses = append(st.LiveProcesses, ProcessInfo(p))
		}
	}
	if st.KnownOther > 0 {
		if st.OtherRuns, err = q.OtherRuns(ctx, name); err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
	}
	if st.RejectedKnown > 0 {
		if st.RejectsKnownFrom, err = q.KnownFromRuns(ctx, name); err != nil {
			return nil, fmt.Errorf("status of %s: %w", name, err)
		}
	}
	if st.Media, err = mediaStatus(ctx, q, name); err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	if st.Contacts, err = contactLinks(ctx, q, name); err != nil {
		return nil, fmt.Errorf("status of %s: %w", name, err)
	}
	return &st, nil
}

// Runs returns every run, newest first.
func Runs(ctx context.Context, pool *pgxpool.Pool) ([]RunStatus, error) {
	rows, err := store.New(pool).RunStatuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	list := make([]RunStatus, len(rows))
	for i := range rows {
		list[i] = statusOf(rows[i])
	}
	return list, nil
}

// statusOf is the status of a run's row, its state derived.
func statusOf(r store.RunStatusRow) RunStatus {
	s := RunStatus{
		Name: r.Name, ScopeID: r.Scope, Source: r.Source, SourceVersion: r.Version, Notify: Notify(r.Notify), Rate: r.Rate,
		Processes: r.Processes, StagingDone: r.StagingDone, StagedLine: r.StagedLine, Records: r.Records, Staged: r.Staged,
		KnownSent: r.KnownSent, KnownOther: r.KnownOther, TakenOver: r.TakenOver, Duplicates: r.Duplicates, Rejected: r.Rejected,
		Pending: r.Pending, Sending: r.Sending, Sent: r.Sent, Failed: r.Failed, Reconciled: r.Reconciled, Parked: r.Parked,
		GivenUp: r.GivenUp, Held: r.Held, HeldMessages: r.HeldMessages, OnFailure: r.OnFailure,
		HandedOver: r.HandedOver, Messages: countsOf(&r), StoppedAt: r.StoppedAt, Lost: lostOf(&r),
		RejectedKnown: r.RejectedKnown, RejectedAcked: r.RejectedAcked, RejectedNew: r.Rejected - r.RejectedKnown - r.RejectedAcked,
		MaxRejects: r.MaxRejects, Older: r.Older, OlderConversations: r.OlderConversations, OlderMode: r.OlderMode,
		Skipped: r.Skipped, Conversations: r.Conversations,
		QuotesDropped: r.QuotesDropped, UnknownFields: r.UnknownFields, PausedUntil: r.PausedUntil, StopReason: r.StopReason,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ProgressAt: r.ProgressAt, FinishedAt: r.FinishedAt, AbandonedAt: r.AbandonedAt,
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
	s.State = runState(&s, r.Planned)
	return s
}

func runState(s *RunStatus, planned bool) RunState {
	// Held messages are not left to send: they wait for an operator.
	left := !s.StagingDone || !planned || s.Pending+s.Sending-s.HeldMessages > 0
	switch {
	case !s.AbandonedAt.IsZero():
		return RunAbandoned
	case left && !s.Live:
		return RunInterrupted
	case !s.StagingDone || !planned:
		return RunStaging
	case left:
		return RunSending
	case s.Failed > 0 || s.RejectsFail():
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
	SlotsGivenUp int64 `json:"slots_given_up"`
	// ScheduleMoves counts this invocation's requests that reached the API
	// later than their shared slots allowed and moved the scope's schedule
	// on (the difference, a few milliseconds of rate each).
	ScheduleMoves  int64   `json:"schedule_moves"`
	Retries        int64   `json:"retries"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	EffectiveRate  float64 `json:"effective_rate"` // messages delivered per second of sending
	// MediaNow is what this invocation did with local files (media.go);
	// nil when it handled none.
	MediaNow *MediaNow `json:"media_now,omitempty"`

	// CRMRequests counts the main API's requests (--link-contacts: contact
	// searches, creations, links) this invocation made, on their own
	// schedule; CRMRateLimited their 429 answers.
	CRMRequests    int64 `json:"crm_requests,omitempty"`
	CRMRateLimited int64 `json:"crm_rate_limited,omitempty"`
}

func (im *Importer) summarize(ctx context.Context, started, sendStart time.Time, runErr error) (*Summary, error) {
	reason := ""
	if runErr != nil {
		reason = cleanText(runErr.Error())
	}
	if err := im.q.MarkEnded(ctx, im.cfg.Run, reason, im.procID); err != nil {
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
		RateLimited:    im.att.paused.Load(),
		SlotsGivenUp:   im.pacer.Late(),
		ScheduleMoves:  im.pacer.Moves(),
		Retries:        im.stats.retries.Load(),
		ElapsedSeconds: time.Since(started).Seconds(),
	}
	s.MediaNow = im.mediaNow()
	if im.link != nil {
		s.CRMRequests, s.CRMRateLimited = im.link.att.pacer.Requests(), im.link.att.paused.Load()
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
	processes       atomic.Int64
	workers         atomic.Int64 // the pool's size in force
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

// StateCounts counts a run's messages by state, for metrics.
func StateCounts(ctx context.Context, pool *pgxpool.Pool, run string) (map[State]int64, error) {
	counts, err := store.New(pool).StateCounts(ctx, run)
	if err != nil {
		return nil, fmt.Errorf("message states of %s: %w", run, err)
	}
	return counts, nil
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

func (im *Importer) loadProgressBase(ctx context.Context) error {
	total, done, err := im.q.Progress(ctx, im.cfg.Run)
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	im.stats.total.Store(total)
	// Done counts this process's deliveries on top of the base: the base
	// is what the database has, less what this process added to it.
	im.stats.baseDone.Store(done - im.stats.sent.Load() - im.stats.failed.Load())
	return nil
}
