package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/sources"
)

// A dry run reads the source and the checkpoint database and says what a
// run would do, without sending or staging anything durable: the source
// goes into a temporary table inside a READ ONLY transaction, rolled back,
// so no msgid is staged or taken over and no run changes. The API is not
// asked anything.

// DryRunReport is what a run of the source would do now.
type DryRunReport struct {
	Run     string   `json:"run"`
	Exists  bool     `json:"exists"`          // the run exists: the command resumes it
	State   RunState `json:"state,omitempty"` // ... in this state
	ScopeID string   `json:"scope_id"`
	Source  string   `json:"source"`
	Notify  Notify   `json:"notify"`

	Records       int64            `json:"records"` // valid records the source holds
	Rejected      int64            `json:"rejected"`
	Duplicates    int64            `json:"duplicates"`
	Conversations int64            `json:"conversations"`
	Skipped       map[string]int64 `json:"skipped,omitempty"`
	Filtered      int64            `json:"filtered,omitempty"` // outside the subset

	New         int64    `json:"new"`          // not in the scope: staged and sent
	AlreadySent int64    `json:"already_sent"` // sent before by a run of the scope: skipped
	Resumed     int64    `json:"resumed"`      // staged by this run, not sent yet: sent when it resumes
	Settled     int64    `json:"settled"`      // staged by this run, failed or given up: retry's, not run's
	Held        int64    `json:"held"`         // held unsent by another run a process works: skipped (it sends them)
	TakeOver    int64    `json:"take_over"`    // held unsent by runs no process works (or abandoned): taken over
	InDoubt     int64    `json:"in_doubt"`     // of Resumed and TakeOver, in doubt: looked up in history first
	HeldBy      []string `json:"held_by,omitempty"`
	TakenFrom   []string `json:"taken_from,omitempty"`

	ToSend          int64       `json:"to_send"`       // New + Resumed + TakeOver
	ChatsToSend     int64       `json:"chats_to_send"` // conversations with something to send
	LoudChats       int64       `json:"loud_chats"`    // of them, those that get a loud message (an incoming lead)
	Older           int64       `json:"older"`         // of ToSend, older than what their chat already shows
	OlderChats      int64       `json:"older_chats"`
	OlderMode       string      `json:"older_mode"` // what the run would do with them: send or skip
	OlderChatsNamed []OlderChat `json:"older_chats_named,omitempty"`

	// Requests is what sending ToSend costs at least: a request a message,
	// and a history look-up an in-doubt one; Seconds is that at Rate (0:
	// unlimited, no estimate).
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rate"`
	Seconds  float64 `json:"estimated_seconds,omitempty"`
}

// OlderChat is a chat with messages older than what it already shows.
type OlderChat struct {
	ConversationID string    `json:"conversation_id"`
	Messages       int64     `json:"messages"`
	Shown          time.Time `json:"newest_shown"` // the newest message sent to it
}

// DryRun reads the source and compares it with the database as Run would,
// and returns what Run would do, writing nothing durable.
func (im *Importer) DryRun(ctx context.Context) (*DryRunReport, error) {
	if im.cfg.Open == nil {
		return nil, errors.New("dry run: no source to read")
	}
	if _, err := im.settleName(ctx); err != nil {
		return nil, err
	}
	rep := &DryRunReport{Run: im.cfg.Run, ScopeID: im.cfg.ScopeID, Source: im.cfg.Source.Label, Notify: im.cfg.Notify,
		Rate: max(im.cfg.Rate, 0), OlderMode: OlderSend}
	if im.cfg.Older == OlderSkip {
		rep.OlderMode = OlderSkip
	}
	if st, err := Status(ctx, im.pool, im.cfg.Run); err == nil {
		// What openRun would refuse, refused here without writing.
		if err := im.sameJob(st); err != nil {
			return nil, err
		}
		rep.Exists, rep.State = true, st.State
	} else if !errors.Is(err, ErrNoRun) {
		return nil, err
	}

	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer conn.Release()
	q := store.New(conn)
	if err := q.CreateDryRunTable(ctx); err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if q.DropDryRunTable(dctx) != nil {
			_ = conn.Conn().Close(dctx) // the session's temporary table goes with it
		}
	}()
	var stats sources.Stats
	err = pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		tq := q.WithTx(tx)
		if stats, err = im.dryRead(ctx, tq); err != nil {
			return err
		}
		if err := tq.AnalyzeDryRun(ctx); err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		counts, err := tq.DryRunCounts(ctx, im.cfg.ScopeID, im.cfg.Run, string(im.cfg.Notify))
		if err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		older, err := tq.DryRunOlder(ctx, im.cfg.ScopeID, im.cfg.Run)
		if err != nil {
			return fmt.Errorf("dry run: %w", err)
		}
		rep.New, rep.AlreadySent, rep.Resumed, rep.Settled = counts.New, counts.AlreadySent, counts.Own, counts.OwnSettled
		rep.Held, rep.TakeOver, rep.InDoubt, rep.HeldBy, rep.TakenFrom = counts.Held, counts.TakeOver, counts.InDoubt, counts.HeldBy, counts.TakenFrom
		rep.ChatsToSend, rep.LoudChats = counts.Conversations, counts.Loud
		rep.Older, rep.OlderChats = older.Messages, older.Conversations
		for _, c := range older.Chats {
			rep.OlderChatsNamed = append(rep.OlderChatsNamed, OlderChat{ConversationID: c.ConversationID, Messages: c.Messages, Shown: time.UnixMilli(c.Shown).UTC()})
		}
		// Rolled back: the table's rows go, and nothing else was written.
		return errDryRunDone
	})
	if err != nil && !errors.Is(err, errDryRunDone) {
		return nil, err
	}
	rep.Records, rep.Rejected, rep.Duplicates, rep.Conversations = stats.Records, stats.Rejected, stats.Duplicates, stats.Conversations
	rep.Skipped, rep.Filtered = stats.Skipped, stats.Filtered
	if len(rep.Skipped) == 0 {
		rep.Skipped = nil
	}
	rep.ToSend = rep.New + rep.Resumed + rep.TakeOver
	if rep.OlderMode == OlderSkip {
		rep.ToSend -= rep.Older
	}
	rep.Requests = rep.ToSend + rep.InDoubt
	if rep.Rate > 0 {
		rep.Seconds = float64(rep.Requests) / rep.Rate
	}
	return rep, nil
}

// sameJob refuses, as openRun does, a run that is another job than this
// invocation's, or abandoned.
func (im *Importer) sameJob(st *RunStatus) error {
	mismatch := func(field, have, want string) error {
		return &MismatchError{Run: im.cfg.Run, Field: field, Have: have, Want: want, StagingDone: st.StagingDone}
	}
	switch {
	case st.State == RunAbandoned:
		return fmt.Errorf("run %s: %w", im.cfg.Run, ErrRunAbandoned)
	case st.ScopeID != im.cfg.ScopeID:
		return mismatch("scope", st.ScopeID, im.cfg.ScopeID)
	case st.Source != im.cfg.Source.Label:
		return mismatch("source", st.Source, im.cfg.Source.Label)
	case st.Notify != im.cfg.Notify:
		return mismatch("notify", string(st.Notify), string(im.cfg.Notify))
	case st.SourceVersion != im.cfg.Source.Version && st.StagingDone:
		return mismatch("source version", st.SourceVersion, im.cfg.Source.Version)
	}
	return nil
}

// errDryRunDone ends the dry run's transaction with a rollback.
var errDryRunDone = errors.New("dry run: done")

// dryRead reads the source into the dry-run table, a batch at a time, as
// staging reads it, and returns the reader's counts.
func (im *Importer) dryRead(ctx context.Context, q *store.Queries) (sources.Stats, error) {
	r, err := im.cfg.Open(ctx)
	if err != nil {
		return sources.Stats{}, &SourceError{Name: im.cfg.Source.Label, Err: err}
	}
	defer r.Close()
	batches := make(chan stageBatch, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		return im.readBatches(gctx, r, 0, batches)
	})
	var last sources.Stats
	g.Go(func() error {
		for b := range batches {
			if len(b.rows) > 0 {
				if err := q.CopyDryRun(gctx, b.rows); err != nil {
					return fmt.Errorf("dry run: %w", err)
				}
			}
			last = b.stats
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return last, err
	}
	return last, nil
}
