package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/sources"
)

// Staging reads the source into the messages table in batches, each
// committed with the source position it reached and the reader's counts.
// The key (scope_id, msgid) makes it idempotent: reading the input again
// from the start stages nothing twice. So staging resumes after its last
// position only when that is provably the same input (a file whose size and
// modification time are unchanged); a stream, a query or a table is read
// again from the start (about 100,000 rows/s: seconds per million).
//
// A msgid the scope already has is not staged again, with one exception:
// when the run holding it is not live (no process works it) or abandoned,
// and has not sent it, this run takes it over — in-doubt state and all, so
// a message that may have landed is still looked up before it is sent.

// maxRejectRaw caps the raw record stored with a reject.
const maxRejectRaw = 64 << 10

// stage reads the source into the messages table, then plans the run. It
// does both under the run's advisory lock; a process that finds the lock
// taken waits, then finds the work done.
func (im *Importer) stage(ctx context.Context, soft <-chan struct{}) error {
	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	defer conn.Release()
	q := store.New(conn)
	if err := im.lockStaging(ctx, q, soft); err != nil {
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if ctx.Err() != nil || conn.Conn().IsClosed() {
			_ = conn.Conn().Close(uctx)
			return
		}
		if err := q.UnlockRun(uctx, im.cfg.Run); err != nil {
			// Closing the session is the sure way to release the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()

	st, err := q.StagingState(ctx, im.cfg.Run)
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if !st.Done {
		im.stats.phase.Store(PhaseStaging)
		if err := im.stageSource(ctx, conn, st.Line, st.Version, soft); err != nil {
			return err
		}
	}
	if !st.Planned {
		return im.planWith(ctx, conn)
	}
	return nil
}

// stagingPoll is how often a process that waits for another to stage the
// run tries the staging lock again.
const stagingPoll = 500 * time.Millisecond

// lockStaging takes the run's staging lock, waiting while another process
// stages or plans the run. It polls instead of blocking in
// pg_advisory_lock, which a role's lock_timeout would end with an error:
// the wait lasts as long as the other process's staging, and a soft stop
// ends it.
func (im *Importer) lockStaging(ctx context.Context, q *store.Queries, soft <-chan struct{}) error {
	var since, said time.Time
	for {
		got, err := q.TryLockRun(ctx, im.cfg.Run)
		if err != nil {
			return fmt.Errorf("stage: lock: %w", err)
		}
		if got {
			im.stats.waiting.Store("")
			if !since.IsZero() {
				im.log.Info("the other process finished staging: going on", "run", im.cfg.Run, "waited_seconds", time.Since(since).Seconds())
			}
			return nil
		}
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		if now.Sub(said) >= 30*time.Second {
			im.log.Info("another process is staging this run; waiting for it", "run", im.cfg.Run, "waited_seconds", now.Sub(since).Seconds())
			im.stats.waiting.Store("another process is staging this run")
			said = now
		}
		select {
		case <-ctx.Done():
			return interrupted(CauseSignal, "", ctx.Err())
		case <-soft:
			return interrupted(CauseSignal, "waiting for another process to stage the run", nil)
		case <-time.After(stagingPoll):
		}
	}
}

func (im *Importer) stageSource(ctx context.Context, conn *pgxpool.Conn, stagedLine int64, version string, soft <-chan struct{}) error {
	if im.cfg.Open == nil {
		return errors.New("stage: the run has not finished staging: give its source again")
	}
	r, err := im.cfg.Open(ctx)
	if err != nil {
		return &SourceError{Name: im.cfg.Source.Label, Err: err}
	}
	defer r.Close()
	switch {
	case stagedLine > 0 && r.Resumable() && version == im.cfg.Source.Version && version != "":
		im.log.Info("resuming staging", "run", im.cfg.Run, "after_line", stagedLine)
	case stagedLine > 0:
		im.log.Info("staging stopped part-way through an input that cannot be resumed by position: reading it again from the start (what was staged is not staged twice)",
			"run", im.cfg.Run, "source", r.Name(), "stopped_after_line", stagedLine)
		fallthrough
	default:
		stagedLine = 0
		if err := store.New(conn).RestartStaging(ctx, im.cfg.Run); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
	}
	if err := store.New(conn).CreateStageTables(ctx); err != nil {
		return fmt.Errorf("stage: %w", err)
	}

	// Reading and validating run beside the database writes, a batch
	// ahead: on two cores that nearly halves staging time.
	started := time.Now()
	batches := make(chan stageBatch, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		return im.readBatches(gctx, r, stagedLine, batches)
	})
	var last stageBatch
	g.Go(func() error {
		for b := range batches {
			if err := im.flushStage(gctx, conn, &b); err != nil {
				return err
			}
			last = b
			if !b.done && stopped(soft) {
				return interrupted(CauseSignal, fmt.Sprintf("staging at line %d", b.lastLine), nil)
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	im.log.Info("staging done", "run", im.cfg.Run, "records", last.stats.Records, "rejected", last.stats.Rejected,
		"duplicates", last.stats.Duplicates, "elapsed_seconds", time.Since(started).Seconds())
	return nil
}

// stageBatch is what one staging transaction writes.
type stageBatch struct {
	rows     []store.StageRow
	rejects  []store.RejectRow
	lastLine int64         // the source position the batch reaches
	stats    sources.Stats // the reader's counts at that position
	done     bool          // the last batch: staging is complete with it
}

// readBatches reads the source from after stagedLine into batches of
// BatchSize records (or 16 MiB), ending with one marked done.
func (im *Importer) readBatches(ctx context.Context, r Source, stagedLine int64, out chan<- stageBatch) error {
	b := stageBatch{lastLine: stagedLine}
	var bytes int
	send := func() error {
		b.stats = r.Stats()
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = stageBatch{lastLine: b.lastLine, rows: make([]store.StageRow, 0, im.cfg.BatchSize)}
		bytes = 0
		return nil
	}
	for {
		rec, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			b.done = true
			return send()
		}
		var le *sources.LineError
		switch {
		case errors.As(err, &le):
			if le.Line <= stagedLine {
				continue
			}
			b.rejects = append(b.rejects, store.RejectRow{Line: le.Line, Field: le.Field, Reason: cleanText(errText(le.Err)), Raw: capBytes(le.Raw, maxRejectRaw),
				MsgID: rejectMsgID(le.MsgID)})
			b.lastLine = max(b.lastLine, le.Line)
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &SourceError{Name: r.Name(), Err: err}
		default:
			im.stats.read.Add(1)
			if rec.Line <= stagedLine {
				continue
			}
			payload, err := json.Marshal(&rec.Payload)
			if err != nil {
				return &SourceError{Name: r.Name(), Err: fmt.Errorf("line %d: %w", rec.Line, err)}
			}
			b.rows = append(b.rows, store.StageRow{MsgID: rec.Payload.MsgID, ConversationID: rec.Payload.ConversationID, Line: rec.Line, Msec: rec.Payload.MsecTimestamp, Payload: payload, Outgoing: rec.Payload.Receiver != nil,
				MediaPath: localMediaPath(&rec.Payload)})
			bytes += len(payload)
			b.lastLine = max(b.lastLine, rec.Line)
		}
		if len(b.rows)+len(b.rejects) >= im.cfg.BatchSize || bytes >= 16<<20 {
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// flushStage writes one batch and its checkpoint in one transaction. A
// batch the database refuses for a record's data (a value PostgreSQL cannot
// store or index) is written again record by record, and only the records
// it refuses are rejected: one bad record never blocks the others.
func (im *Importer) flushStage(ctx context.Context, conn *pgxpool.Conn, sb *stageBatch) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return im.writeBatch(ctx, tx, sb, false) })
	if isDataError(err) {
		im.log.Warn("the database refused a record of a staging batch: staging that batch record by record", "ending_at_line", sb.lastLine, "err", err)
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return im.writeBatch(ctx, tx, sb, true) })
	}
	if err != nil {
		return fmt.Errorf("stage: batch ending at line %d: %w", sb.lastLine, err)
	}
	return nil
}

func (im *Importer) writeBatch(ctx context.Context, tx pgx.Tx, sb *stageBatch, oneByOne bool) error {
	q := im.q.WithTx(tx)
	c := store.StagingCheckpoint{
		Run: im.cfg.Run, Line: sb.lastLine, Done: sb.done,
		Records: sb.stats.Records, Duplicates: sb.stats.Duplicates, Unknown: sb.stats.UnknownFields,
		Skipped: sb.stats.Skipped, Conversations: sb.stats.Conversations,
	}
	if len(sb.rows) > 0 {
		var err error
		if oneByOne {
			err = im.stageOneByOne(ctx, tx, sb)
		} else {
			err = q.CopyStage(ctx, sb.rows)
		}
		if err != nil {
			return err
		}
		if c.Inserted, err = q.InsertStaged(ctx, im.cfg.ScopeID, im.cfg.Run); err != nil {
			return err
		}
		// Counted after the insert: a conflict with another run's
		// concurrent batch resolves only once that batch commits, and
		// only then is its row visible to a new statement. A batch
		// inserted whole (a first import) has nothing to count.
		if c.Inserted < int64(len(sb.rows)) {
			if c.Taken, err = q.TakeOver(ctx, im.cfg.ScopeID, im.cfg.Run); err != nil {
				return err
			}
			// What is left with other runs after the takeover: sent, or
			// held by a run that lives.
			if c.KnownSent, c.KnownOther, err = q.CountKnown(ctx, im.cfg.ScopeID, im.cfg.Run); err != nil {
				return err
			}
		}
	}
	if len(sb.rejects) > 0 {
		if err := q.CopyRejects(ctx, sb.rejects); err != nil {
			return err
		}
		if err := q.InsertRejects(ctx, im.cfg.ScopeID, im.cfg.Run); err != nil {
			return err
		}
	}
	return q.CheckpointStaging(ctx, c)
}

// stageOneByOne puts the batch's rows into the staging table one at a time,
// each under a savepoint, and turns those the database refuses into
// rejects (added to sb). It also tries each row against the messages table
// (rolled back) so a value that cannot be indexed shows here, not in the
// batch insert.
func (im *Importer) stageOneByOne(ctx context.Context, tx pgx.Tx, sb *stageBatch) error {
	good := sb.rows[:0:0]
	for _, r := range sb.rows {
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if err := im.q.WithTx(sp).CopyStage(ctx, []store.StageRow{r}); err != nil {
				return err
			}
			inner, err := sp.Begin(ctx)
			if err != nil {
				return err
			}
			defer inner.Rollback(ctx) //nolint:errcheck // rolled back on purpose
			return im.q.WithTx(inner).TryMessage(ctx, im.cfg.ScopeID, im.cfg.Run, r)
		})
		switch {
		case err == nil:
			good = append(good, r)
		case isDataError(err):
			sb.rejects = append(sb.rejects, store.RejectRow{Line: r.Line, Reason: cleanText("the database cannot store this record: " + err.Error()), Raw: capBytes(r.Payload, maxRejectRaw)})
		default:
			return err
		}
	}
	sb.rows = good
	return nil
}

// isDataError reports whether err is PostgreSQL refusing a value (a data
// exception, a constraint, a program limit such as an index row too large)
// rather than trouble reaching it.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "54":
		return true
	case "23":
		return pgErr.Code != "23505"
	}
	return false
}

func errText(err error) string {
	if err == nil {
		return "invalid"
	}
	return err.Error()
}

// cleanText makes s storable as PostgreSQL text: valid UTF-8, no NUL bytes.
func cleanText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ReplaceAll(s, "\x00", "\\0")
}

func capBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
