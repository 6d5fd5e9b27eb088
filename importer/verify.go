package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// HistoryReader is what verification needs of the Chats API client.
type HistoryReader interface {
	History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error)
}

// MaxVerifyIssues caps each list of a VerifyReport; the counts stay exact.
const MaxVerifyIssues = 1000

// VerifyIssue is one msgid whose presence in its chat's history is wrong,
// or not settled yet (in flight).
type VerifyIssue struct {
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"`
	ChatID         string `json:"chat_id,omitempty"`
	Count          int    `json:"count"`           // times the history holds it (distinct Kommo message ids)
	State          State  `json:"state,omitempty"` // the database's state, for Unexpected and InFlight
	// After is, for OutOfOrder, a newer message of the chat that Kommo
	// holds before it (it arrived earlier).
	After string `json:"after,omitempty"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Run                string `json:"run"`
	Sample             int    `json:"sample,omitempty"`    // conversations asked for; 0: all
	ConversationsTotal int64  `json:"conversations_total"` // of the run with sent messages
	Conversations      int64  `json:"conversations"`       // checked, by this verify and the one it resumed
	// Resumed of Conversations were checked by an interrupted verify that
	// this one resumed (VerifyConfig.Resume).
	Resumed         int64 `json:"conversations_resumed,omitempty"`
	Checked         int64 `json:"messages_checked"` // sent msgids looked for
	Found           int64 `json:"found_once"`
	MissingCount    int64 `json:"missing_count"`
	DuplicatedCount int64 `json:"duplicated_count"`
	UnexpectedCount int64 `json:"unexpected_count"`
	InFlightCount   int64 `json:"in_flight_count"`
	OutOfOrderCount int64 `json:"out_of_order_count"`
	OutOfOrderChats int64 `json:"out_of_order_chats"`
	// Missing: recorded as sent longer ago than the reconcile window,
	// absent from the chat's history.
	Missing []VerifyIssue `json:"missing"`
	// Duplicated: in the chat's history more than once.
	Duplicated []VerifyIssue `json:"duplicated"`
	// Unexpected: in the chat's history although the database holds it as
	// pending, failed or given up: sending it (run, retry) would duplicate it.
	Unexpected []VerifyIssue `json:"unexpected"`
	// InFlight: not settled yet while a run sends: in doubt ("sending"),
	// recorded sent within the reconcile window and not in history yet (the
	// API processes messages asynchronously), or sent while verify read its
	// chat. Neither missing nor unexpected: verify again later.
	InFlight []VerifyIssue `json:"in_flight"`
	// OutOfOrder: the chat holds it after a newer message of its own (as
	// history lists the chat, newest first): it arrived later than that
	// one (a retry, a backfill). Kommo shows it there.
	OutOfOrder []VerifyIssue `json:"out_of_order"`
	// Marked of the missing ones were recorded as failed, with the reason:
	// retry (or verify --repair) sends them again.
	Marked    int64   `json:"marked_failed"`
	Truncated bool    `json:"truncated,omitempty"` // some list hit MaxVerifyIssues
	Requests  int64   `json:"http_requests"`       // history requests, retries included, for the conversations checked
	Elapsed   float64 `json:"elapsed_seconds"`     // of this verify
}

// Clean reports whether every checked message is in its chat exactly once
// and in order, and nothing unsent is there. Messages in flight do not
// make a report unclean.
func (r *VerifyReport) Clean() bool {
	return r.MissingCount == 0 && r.DuplicatedCount == 0 && r.UnexpectedCount == 0 && r.OutOfOrderCount == 0
}

// VerifyConfig tunes a Verifier. Zero values take the defaults noted.
type VerifyConfig struct {
	Run    string // required
	Sample int    // check a random sample of this many conversations; 0: all
	// Rate is requests/s for the scope, shared with the runs sending to it;
	// default 5; below 0: unlimited.
	Rate float64
	// ReconcileWait is how long after it was recorded sent a message may
	// still be missing from history (asynchronous processing): it is in
	// flight until then, not missing; default 10s, as the runs' window.
	ReconcileWait time.Duration
	// Resume goes on with the run's last verification if it was
	// interrupted: the conversations it checked are not read again, and
	// the report covers them too. Without it (or with nothing to resume),
	// a new verification starts.
	Resume bool
	// NoMark leaves messages found missing recorded as sent; by default
	// they are recorded as failed (with the reason) so that retry sends
	// them.
	NoMark       bool
	MaxAttempts  int           // attempts per request on 5xx and network errors; default 8
	BackoffBase  time.Duration // first retry delay; default 1s
	BackoffMax   time.Duration // default 60s
	DefaultPause time.Duration // on a 429 without retry-after; default 60s
	Logger       *slog.Logger
}

// verifyBatch is how many conversations are read from the database at once
// when all are checked.
const verifyBatch = 500

type verifyConv = store.VerifyConv

// Verifier reads a run's chats back and checks them against the database.
type Verifier struct {
	cfg   VerifyConfig
	pool  *pgxpool.Pool
	q     *store.Queries
	api   HistoryReader // unpaced: every attempt takes a pacer slot first
	att   *attempter
	log   *slog.Logger
	scope string

	started  time.Time
	total    atomic.Int64 // conversations this verification checks
	done     atomic.Int64 // ... checked so far, resumed ones included
	resumed  atomic.Int64 // ... of them by the interrupted verification this one resumed
	requests atomic.Int64 // this verify's history requests
	issues   atomic.Int64 // missing, duplicated, unexpected, out of order so far (this verify)
}

// VerifyProgress is a snapshot of a verification, for progress bars and logs.
type VerifyProgress struct {
	Conversations int64         // checked, resumed ones included
	Resumed       int64         // checked by the interrupted verification this one resumed
	Total         int64         // to check
	Requests      int64         // history requests this verify made
	Issues        int64         // problems found so far by this verify
	Elapsed       time.Duration // of this verify
	Rate          float64       // the scope's request rate in force; 0: unlimited
	PausedUntil   time.Time     // the scope's 429 pause, when one is in force
}

// NewVerifier returns a verifier of cfg.Run. It returns ErrNoRun for an
// unknown run.
func NewVerifier(ctx context.Context, pool *pgxpool.Pool, api HistoryReader, cfg VerifyConfig) (*Verifier, error) {
	if cfg.Run == "" {
		return nil, errors.New("verify: Run is required")
	}
	retryDefaults(&cfg.MaxAttempts, &cfg.BackoffBase, &cfg.BackoffMax, &cfg.DefaultPause)
	orDefault(&cfg.ReconcileWait, DefaultReconcileWait)
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := store.New(pool)
	scope, err := q.RunScope(ctx, cfg.Run)
	if isNoRows(err) {
		return nil, fmt.Errorf("%w %q", ErrNoRun, cfg.Run)
	} else if err != nil {
		return nil, fmt.Errorf("verify %s: %w", cfg.Run, err)
	}
	return &Verifier{cfg: cfg, pool: pool, q: q, api: api, log: cfg.Logger, scope: scope,
		att: &attempter{pacer: newPacer(q, wallClock{}, scope, cfg.Rate, noDBWait), log: cfg.Logger,
			policy: retryPolicy{backoffBase: cfg.BackoffBase, backoffMax: cfg.BackoffMax, defaultPause: cfg.DefaultPause}}}, nil
}

// Progress returns a snapshot of the verification. Safe to call at any time.
func (v *Verifier) Progress() VerifyProgress {
	p := VerifyProgress{Conversations: v.done.Load(), Resumed: v.resumed.Load(), Total: v.total.Load(), Requests: v.requests.Load(), Issues: v.issues.Load(),
		Rate: v.att.pacer.Rate(), PausedUntil: v.att.pacer.PausedUntil()}
	if !v.started.IsZero() {
		p.Elapsed = time.Since(v.started)
	}
	return p
}

// Run reads back the chat history of each conversation of the run that has
// sent messages (or of a random sample of them) and checks, as Kommo holds
// the chat: that each sent msgid appears there exactly once (as
// message.client_id), that none appears after a newer message of its chat
// (it arrived out of order), and that no message the database holds as
// unsent is there. Messages a run is sending meanwhile are reported in
// flight, not as problems. Pages shifted by messages arriving meanwhile are
// harmless: a message is counted once per distinct Kommo message id. What
// each conversation showed is checkpointed, so an interrupted verify
// resumes (VerifyConfig.Resume). Messages found missing are recorded as
// failed unless NoMark.
//
// It returns a *StopError when the API refuses the scope, and
// ErrInterrupted (wrapped) when ctx ends or the API keeps failing; with an
// error, the report holds what was checked until then.
func (v *Verifier) Run(ctx context.Context) (*VerifyReport, error) {
	v.started = time.Now()
	sample, err := v.open(ctx)
	if err != nil {
		return nil, err
	}
	total, err := v.q.CountVerifyConversations(ctx, v.cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", v.cfg.Run, err)
	}
	toCheck := total
	if sample > 0 {
		toCheck = min(total, int64(sample))
	}
	v.total.Store(max(toCheck, v.resumed.Load()))
	v.done.Store(v.resumed.Load())

	if sample > 0 {
		var convs []verifyConv
		convs, err = v.q.VerifySample(ctx, v.cfg.Run, max(sample-int(v.resumed.Load()), 0))
		if err == nil {
			err = v.checkAll(ctx, convs)
		}
	} else {
		after := ""
		for err == nil {
			var convs []verifyConv
			convs, err = v.q.VerifyConversations(ctx, v.cfg.Run, after, verifyBatch)
			if err != nil || len(convs) == 0 {
				break
			}
			err = v.checkAll(ctx, convs)
			after = convs[len(convs)-1].ID
		}
	}
	if err == nil {
		err = v.q.FinishVerification(ctx, v.cfg.Run)
	}
	// The report covers every conversation checked, this verify's and the
	// interrupted one's it resumed, read from the checkpoint (after a hard
	// stop, with a moment of its own).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	rep, rerr := v.report(rctx, sample, total)
	if rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	return rep, err
}

// open starts a verification, or resumes the run's last one; it returns
// the sample size in force.
func (v *Verifier) open(ctx context.Context) (int, error) {
	sample := v.cfg.Sample
	if v.cfg.Resume {
		last, ok, err := v.q.LatestVerification(ctx, v.cfg.Run)
		if err != nil {
			return 0, fmt.Errorf("verify %s: %w", v.cfg.Run, err)
		}
		switch {
		case ok && !last.Finished:
			if sample != 0 && sample != last.Sample {
				v.log.Warn("resuming a verification of another --sample: its own goes on", "sample", last.Sample)
			}
			v.resumed.Store(last.Checked)
			v.log.Info("resuming the interrupted verification", "run", v.cfg.Run, "conversations_checked", last.Checked)
			return last.Sample, nil
		case ok:
			v.log.Info("the last verification of the run finished: starting a new one", "run", v.cfg.Run)
		default:
			v.log.Info("no verification of the run to resume: starting one", "run", v.cfg.Run)
		}
	}
	err := pgx.BeginFunc(ctx, v.pool, func(tx pgx.Tx) error { return v.q.WithTx(tx).StartVerification(ctx, v.cfg.Run, sample) })
	if err != nil {
		return 0, fmt.Errorf("verify %s: %w", v.cfg.Run, err)
	}
	return sample, nil
}

// report builds the report from the checkpoint.
func (v *Verifier) report(ctx context.Context, sample int, total int64) (*VerifyReport, error) {
	sums, err := v.q.VerifiedSums(ctx, v.cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("verify %s: report: %w", v.cfg.Run, err)
	}
	rep := &VerifyReport{Run: v.cfg.Run, Sample: sample, ConversationsTotal: total, Conversations: sums.Conversations, Resumed: v.resumed.Load(),
		Checked: sums.Checked, Found: sums.Found, MissingCount: sums.Missing, DuplicatedCount: sums.Duplicated,
		UnexpectedCount: sums.Unexpected, InFlightCount: sums.InFlight, OutOfOrderCount: sums.OutOfOrder, OutOfOrderChats: sums.OutOfOrderChats,
		Requests: sums.Requests, Elapsed: time.Since(v.started).Seconds()}
	for _, l := range []struct {
		kind string
		list *[]VerifyIssue
		n    int64
	}{
		{issueMissing, &rep.Missing, sums.Missing}, {issueDuplicated, &rep.Duplicated, sums.Duplicated},
		{issueUnexpected, &rep.Unexpected, sums.Unexpected}, {issueInFlight, &rep.InFlight, sums.InFlight},
		{issueOutOfOrder, &rep.OutOfOrder, sums.OutOfOrder},
	} {
		if l.n == 0 {
			continue
		}
		issues, err := v.q.VerifiedIssues(ctx, v.cfg.Run, l.kind, MaxVerifyIssues)
		if err != nil {
			return nil, fmt.Errorf("verify %s: report: %w", v.cfg.Run, err)
		}
		for _, i := range issues {
			*l.list = append(*l.list, VerifyIssue{MsgID: i.MsgID, ConversationID: i.ConversationID, ChatID: i.ChatID, Count: i.Count, State: i.State, After: i.After})
		}
		if l.n > int64(len(issues)) {
			rep.Truncated = true
		}
	}
	n, err := v.q.CountVerifyMarked(ctx, v.cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("verify %s: report: %w", v.cfg.Run, err)
	}
	rep.Marked = n
	return rep, nil
}

// The kinds of issues the checkpoint keeps.
const (
	issueMissing    = "missing"
	issueDuplicated = "duplicated"
	issueUnexpected = "unexpected"
	issueInFlight   = "in_flight"
	issueOutOfOrder = "out_of_order"
)

func (v *Verifier) checkAll(ctx context.Context, convs []verifyConv) error {
	for _, c := range convs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		if err := v.check(ctx, c); err != nil {
			return err
		}
		v.done.Add(1)
	}
	return nil
}

type verifyMsg struct {
	state State
	msec  int64
	ago   time.Duration       // since it was recorded sent
	seen  map[string]struct{} // Kommo message ids holding this msgid
	late  string              // a newer message of the chat listed before it ("": none)
}

// check verifies one conversation: its messages of the run in memory (ids
// only), then its chat's history page by page, newest first, then the
// messages that look wrong read again (a run may have moved them
// meanwhile), and records what it found.
func (v *Verifier) check(ctx context.Context, c verifyConv) error {
	list, err := v.q.VerifyMessages(ctx, v.cfg.Run, c.ID, nil)
	if err != nil {
		return fmt.Errorf("verify conversation %s: %w", c.ID, err)
	}
	msgs := make(map[string]*verifyMsg, len(list))
	for _, m := range list {
		msgs[m.MsgID] = &verifyMsg{state: m.State, msec: m.Msec, ago: m.SentAgo}
	}
	res := store.Verified{ConversationID: c.ID}
	if c.ChatID != "" {
		if res.Requests, err = v.readHistory(ctx, c, msgs); err != nil {
			return err
		}
	}

	// Those that look wrong, read again: a message sent while its chat was
	// read is in flight, not missing or unexpected.
	var suspects []string
	for id, m := range msgs {
		n := len(m.seen)
		if (m.state == StateSent && n == 0) || (m.state != StateSent && m.state != StateSending && n > 0) {
			suspects = append(suspects, id)
		}
	}
	moved := map[string]bool{}
	if len(suspects) > 0 {
		again, err := v.q.VerifyMessages(ctx, v.cfg.Run, c.ID, suspects)
		if err != nil {
			return fmt.Errorf("verify conversation %s: %w", c.ID, err)
		}
		for _, m := range again {
			if m.State != msgs[m.MsgID].state {
				moved[m.MsgID] = true
			}
		}
	}

	var missing []string
	ids := make([]string, 0, len(msgs))
	for id := range msgs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m := msgs[id]
		n := len(m.seen)
		issue := store.VerifiedIssue{MsgID: id, ConversationID: c.ID, ChatID: c.ChatID, Count: n}
		inFlight := func() {
			issue.Kind, issue.State = issueInFlight, m.state
			res.InFlight++
			res.Issues = append(res.Issues, issue)
		}
		switch {
		case moved[id] || m.state == StateSending:
			inFlight()
		case m.state == StateSent:
			res.Checked++
			switch {
			case n == 1:
				res.Found++
			case n == 0 && m.ago < v.cfg.ReconcileWait:
				res.Checked--
				inFlight()
			case n == 0:
				issue.Kind = issueMissing
				res.Missing++
				res.Issues = append(res.Issues, issue)
				missing = append(missing, id)
			default:
				issue.Kind = issueDuplicated
				res.Duplicated++
				res.Issues = append(res.Issues, issue)
			}
		case n > 0:
			// Pending, failed or given up, and in the chat: sending it
			// again would duplicate it.
			issue.Kind, issue.State = issueUnexpected, m.state
			res.Unexpected++
			res.Issues = append(res.Issues, issue)
		}
		if m.late != "" && n > 0 {
			res.OutOfOrder++
			res.Issues = append(res.Issues, store.VerifiedIssue{Kind: issueOutOfOrder, MsgID: id, ConversationID: c.ID, ChatID: c.ChatID, Count: n, After: m.late})
		}
	}
	v.issues.Add(res.Missing + res.Duplicated + res.Unexpected + res.OutOfOrder)
	switch {
	case len(missing) == 0 || v.cfg.NoMark:
	case c.ChatID == "":
		// No chat id was ever learnt for it: its history could not be read,
		// and sending again blind could duplicate every message.
		v.log.Warn("a conversation with sent messages has no known chat id: its history cannot be read, and its messages are not marked to be sent again",
			"conversation_id", c.ID, "messages", len(missing))
	default:
		marked, err := v.q.MarkMissing(ctx, v.cfg.Run, missing, v.cfg.ReconcileWait)
		if err != nil {
			return fmt.Errorf("verify conversation %s: %w", c.ID, err)
		}
		if len(marked) > 0 {
			v.log.Debug("messages recorded sent are missing from their chat: recorded as failed, retry sends them",
				"conversation_id", c.ID, "chat_id", c.ChatID, "msgids", marked)
		}
	}
	if err := v.q.SaveVerified(ctx, v.cfg.Run, res); err != nil {
		return fmt.Errorf("verify conversation %s: %w", c.ID, err)
	}
	return nil
}

// readHistory reads the chat's history newest first and notes, for each of
// the run's messages, the Kommo messages holding its msgid and whether a
// newer message of the chat is listed before it (it arrived after that
// one). It reads on until every message recorded sent was seen and a page
// ends older than all of them: a message missing (or Kommo listing the
// chat by arrival) reads the chat to its end. It returns the requests it
// made.
func (v *Verifier) readHistory(ctx context.Context, c verifyConv, msgs map[string]*verifyMsg) (int64, error) {
	oldest := int64(1<<63 - 1)
	unseen := 0
	for _, m := range msgs {
		oldest = min(oldest, m.msec)
		if m.state == StateSent {
			unseen++
		}
	}
	// The chat as listed (newest first): each item's time and client_id,
	// for the order check at the end.
	var listed []int64
	var listedIDs []string
	var requests int64
	for offset := 0; ; offset += historyPage {
		page, n, err := v.history(ctx, c.ChatID, offset)
		requests += n
		if err != nil {
			return requests, fmt.Errorf("verify conversation %s (chat %s): %w", c.ID, c.ChatID, err)
		}
		for _, h := range page {
			listed = append(listed, h.MsecTimestamp)
			listedIDs = append(listedIDs, h.Message.ClientID)
			m, ok := msgs[h.Message.ClientID]
			if !ok {
				continue
			}
			if m.seen == nil {
				m.seen = map[string]struct{}{}
				if m.state == StateSent {
					unseen--
				}
			}
			m.seen[h.Message.ID] = struct{}{}
		}
		if len(page) < historyPage || (unseen == 0 && page[len(page)-1].MsecTimestamp < oldest) {
			break
		}
	}
	// An item listed before (newer in the listing than) a message whose
	// time is later arrived after it: walking from the oldest arrival up,
	// the newest time so far is what each item came after.
	var newest int64 = -1 << 63
	newestID := ""
	for i := len(listed) - 1; i >= 0; i-- {
		if m, ok := msgs[listedIDs[i]]; ok && listed[i] < newest && m.late == "" {
			m.late = newestID
		}
		if listed[i] > newest {
			newest, newestID = listed[i], listedIDs[i]
		}
	}
	return requests, nil
}

// history reads one page in a paced attempt: a 429 pauses the scope, a
// retryable failure is retried after its backoff (verification is
// sequential: it sleeps), anything else ends it. It returns the attempts
// it made.
func (v *Verifier) history(ctx context.Context, chatID string, offset int) ([]chatsapi.HistoryMessage, int64, error) {
	var page []chatsapi.HistoryMessage
	var n int64
	for failures := 0; ; failures++ {
		d, err := v.att.attempt(ctx, nil, request{do: func(ctx context.Context) (err error) {
			n++
			v.requests.Add(1)
			page, err = v.api.History(ctx, chatID, offset, historyPage)
			return err
		}}, failures)
		if err != nil {
			return nil, n, err
		}
		switch d.act {
		case 0:
			return page, n, nil
		case actAbort:
			return nil, n, interrupted(CauseSignal, "", d.err)
		case actStop:
			return nil, n, d.err
		case actFail:
			return nil, n, d.api
		}
		if failures+1 >= v.cfg.MaxAttempts {
			return nil, n, interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at reading chat %s", failures+1, chatID), d.api)
		}
		if err := v.att.sleep(ctx, nil, d.after); err != nil {
			return nil, n, err
		}
	}
}
