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

// The staging lock is a session advisory lock per run: one process stages
// and plans, the others wait and then join the sending.
const (
	lockRun   = `SELECT pg_advisory_lock(hashtextextended('kommo-import run ' || $1, 0))`
	tryRun    = `SELECT pg_try_advisory_lock(hashtextextended('kommo-import run ' || $1, 0))`
	unlockRun = `SELECT pg_advisory_unlock(hashtextextended('kommo-import run ' || $1, 0))`
)

const createStageTable = `
CREATE TEMP TABLE IF NOT EXISTS kommo_import_stage (
    msgid           text    NOT NULL,
    conversation_id text    NOT NULL,
    line            bigint  NOT NULL,
    msec_timestamp  bigint  NOT NULL,
    payload         bytea   NOT NULL,
    outgoing        boolean NOT NULL
) ON COMMIT DELETE ROWS`

const createStageRejects = `
CREATE TEMP TABLE IF NOT EXISTS kommo_import_stage_rejects (
    line   bigint NOT NULL,
    field  text   NOT NULL,
    reason text   NOT NULL,
    raw    bytea  NOT NULL
) ON COMMIT DELETE ROWS`

const selectStaging = `SELECT staging_done, planned, staged_line, source_version FROM kommo_import_runs WHERE name = $1`

// restartStaging starts a pass over the whole input: the counters of what
// the scope already had are counted again.
const restartStaging = `UPDATE kommo_import_runs SET staged_line = 0, known_sent = 0, known_other = 0, updated_at = now() WHERE name = $1`

const insertStaged = `
INSERT INTO kommo_import_messages (scope_id, msgid, run_name, conversation_id, line, msec_timestamp, payload, outgoing)
SELECT $1, msgid, $2, conversation_id, line, msec_timestamp, payload, outgoing
FROM kommo_import_stage
ORDER BY line
ON CONFLICT (scope_id, msgid) DO NOTHING`

// takeOver moves the batch's msgids held unsent by runs nobody works (or
// abandoned ones) to this run, with this input's payload and position. A
// failed message becomes pending again (the export may have fixed it); an
// in-doubt one keeps its state, attempts and silent flag, so it is looked up
// before it is ever sent again. It returns how many came from each run.
const takeOver = `
WITH moved AS (
    UPDATE kommo_import_messages m
    SET run_name = $2, line = s.line, conversation_id = s.conversation_id, msec_timestamp = s.msec_timestamp,
        payload = s.payload, outgoing = s.outgoing,
        state = CASE WHEN m.state = 'failed' THEN 'pending' ELSE m.state END,
        last_error = CASE WHEN m.state = 'failed' THEN NULL ELSE m.last_error END,
        silent = CASE WHEN m.state = 'sending' THEN m.silent END
    FROM kommo_import_stage s, kommo_import_runs o
    WHERE m.scope_id = $1 AND m.msgid = s.msgid AND m.run_name <> $2 AND m.state <> 'sent'
      AND o.name = m.run_name
      AND (o.abandoned_at IS NOT NULL
           OR NOT EXISTS (SELECT 1 FROM kommo_import_live_processes p WHERE p.run_name = m.run_name))
    RETURNING o.name AS old
), handed AS (
    UPDATE kommo_import_runs r SET handed_over = handed_over + x.n, updated_at = now()
    FROM (SELECT old, count(*) AS n FROM moved GROUP BY old) x
    WHERE r.name = x.old
)
SELECT count(*) FROM moved`

// countKnown counts the batch's msgids that the scope already has from
// another run: sent (a re-sync skips them) or still to be sent by a live run.
const countKnown = `
SELECT count(*) FILTER (WHERE m.state = 'sent'), count(*) FILTER (WHERE m.state <> 'sent')
FROM kommo_import_stage s
JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = s.msgid
WHERE m.run_name <> $2`

const insertRejects = `
INSERT INTO kommo_import_rejects (run_name, line, field, reason, raw)
SELECT $1, line, field, reason, raw FROM kommo_import_stage_rejects
ON CONFLICT (run_name, line) DO UPDATE SET field = EXCLUDED.field, reason = EXCLUDED.reason, raw = EXCLUDED.raw, created_at = now()`

const checkpointStaging = `
UPDATE kommo_import_runs SET
    staged_line    = @line,
    staged         = staged + @inserted,
    taken_over     = taken_over + @taken,
    known_sent     = known_sent + @known_sent,
    known_other    = known_other + @known_other,
    rejected       = (SELECT count(*) FROM kommo_import_rejects WHERE run_name = @run),
    records        = @records,
    duplicates     = @duplicates,
    unknown_fields = @unknown,
    skipped        = @skipped,
    conversations  = @conversations,
    staging_done   = @done,
    updated_at     = now()
WHERE name = @run`

// maxRejectRaw caps the raw record stored with a reject.
const maxRejectRaw = 64 << 10

type stageRow struct {
	msgid, conversationID string
	line, msec            int64
	payload               []byte
	outgoing              bool
}

type rejectRow struct {
	line          int64
	field, reason string
	raw           []byte
}

// stage reads the source into the messages table, then plans the run. It
// does both under the run's advisory lock; a process that finds the lock
// taken waits, then finds the work done.
func (im *Importer) stage(ctx context.Context, soft <-chan struct{}) error {
	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	defer conn.Release()
	var got bool
	if err := conn.QueryRow(ctx, tryRun, im.cfg.Run).Scan(&got); err != nil {
		return fmt.Errorf("stage: lock: %w", err)
	}
	if !got {
		im.log.Info("another process is staging this run; waiting for it", "run", im.cfg.Run)
		if _, err := conn.Exec(ctx, lockRun, im.cfg.Run); err != nil {
			return fmt.Errorf("stage: lock: %w", err)
		}
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if ctx.Err() != nil || conn.Conn().IsClosed() {
			_ = conn.Conn().Close(uctx)
			return
		}
		if _, err := conn.Exec(uctx, unlockRun, im.cfg.Run); err != nil {
			// Closing the session is the sure way to release the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()

	var done, planned bool
	var stagedLine int64
	var version string
	if err := conn.QueryRow(ctx, selectStaging, im.cfg.Run).Scan(&done, &planned, &stagedLine, &version); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if !done {
		im.stats.phase.Store(PhaseStaging)
		if err := im.stageSource(ctx, conn, stagedLine, version, soft); err != nil {
			return err
		}
	}
	if !planned {
		return im.planWith(ctx, conn)
	}
	return nil
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
		if _, err := conn.Exec(ctx, restartStaging, im.cfg.Run); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
	}
	for _, sql := range []string{createStageTable, createStageRejects} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("stage: %w", err)
		}
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
	rows     []stageRow
	rejects  []rejectRow
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
		b = stageBatch{lastLine: b.lastLine, rows: make([]stageRow, 0, im.cfg.BatchSize)}
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
			b.rejects = append(b.rejects, rejectRow{line: le.Line, field: le.Field, reason: cleanText(errText(le.Err)), raw: capBytes(le.Raw, maxRejectRaw)})
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
			b.rows = append(b.rows, stageRow{rec.Payload.MsgID, rec.Payload.ConversationID, rec.Line, rec.Payload.MsecTimestamp, payload, rec.Payload.Receiver != nil})
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
	var inserted, taken, knownSent, knownOther int64
	if len(sb.rows) > 0 {
		var err error
		if oneByOne {
			err = im.stageOneByOne(ctx, tx, sb)
		} else {
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"kommo_import_stage"},
				[]string{"msgid", "conversation_id", "line", "msec_timestamp", "payload", "outgoing"},
				pgx.CopyFromSlice(len(sb.rows), func(i int) ([]any, error) {
					r := &sb.rows[i]
					return []any{r.msgid, r.conversationID, r.line, r.msec, r.payload, r.outgoing}, nil
				}))
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, insertStaged, im.cfg.ScopeID, im.cfg.Run)
		if err != nil {
			return err
		}
		inserted = tag.RowsAffected()
		// Counted after the insert: a conflict with another run's
		// concurrent batch resolves only once that batch commits, and
		// only then is its row visible to a new statement. A batch
		// inserted whole (a first import) has nothing to count.
		if inserted < int64(len(sb.rows)) {
			if err := tx.QueryRow(ctx, takeOver, im.cfg.ScopeID, im.cfg.Run).Scan(&taken); err != nil {
				return err
			}
			// What is left with other runs after the takeover: sent, or
			// held by a run that lives.
			if err := tx.QueryRow(ctx, countKnown, im.cfg.ScopeID, im.cfg.Run).Scan(&knownSent, &knownOther); err != nil {
				return err
			}
		}
	}
	if len(sb.rejects) > 0 {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"kommo_import_stage_rejects"},
			[]string{"line", "field", "reason", "raw"},
			pgx.CopyFromSlice(len(sb.rejects), func(i int) ([]any, error) {
				r := &sb.rejects[i]
				return []any{r.line, r.field, r.reason, r.raw}, nil
			}))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertRejects, im.cfg.Run); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, checkpointStaging, pgx.NamedArgs{
		"run": im.cfg.Run, "line": sb.lastLine, "inserted": inserted, "taken": taken,
		"known_sent": knownSent, "known_other": knownOther,
		"records": sb.stats.Records, "duplicates": sb.stats.Duplicates, "unknown": unknownFields(sb.stats), "done": sb.done,
		"skipped": skippedCounts(sb.stats), "conversations": sb.stats.Conversations,
	})
	return err
}

// stageOneByOne puts the batch's rows into the staging table one at a time,
// each under a savepoint, and turns those the database refuses into
// rejects (added to sb). It also tries each row against the messages table
// so a value that cannot be indexed shows here, not in the batch insert.
func (im *Importer) stageOneByOne(ctx context.Context, tx pgx.Tx, sb *stageBatch) error {
	good := sb.rows[:0:0]
	for _, r := range sb.rows {
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if _, err := sp.Exec(ctx, `INSERT INTO kommo_import_stage (msgid, conversation_id, line, msec_timestamp, payload, outgoing) VALUES ($1, $2, $3, $4, $5, $6)`,
				r.msgid, r.conversationID, r.line, r.msec, r.payload, r.outgoing); err != nil {
				return err
			}
			// The real insert, rolled back with the savepoint: it is the one
			// the batch insert repeats, and what may refuse the value.
			inner, err := sp.Begin(ctx)
			if err != nil {
				return err
			}
			defer inner.Rollback(ctx) //nolint:errcheck // rolled back on purpose
			_, err = inner.Exec(ctx, `INSERT INTO kommo_import_messages (scope_id, msgid, run_name, conversation_id, line, msec_timestamp, payload, outgoing)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (scope_id, msgid) DO NOTHING`,
				im.cfg.ScopeID, r.msgid, im.cfg.Run, r.conversationID, r.line, r.msec, r.payload, r.outgoing)
			return err
		})
		switch {
		case err == nil:
			good = append(good, r)
		case isDataError(err):
			sb.rejects = append(sb.rejects, rejectRow{line: r.line, reason: cleanText("the database cannot store this record: " + err.Error()), raw: capBytes(r.payload, maxRejectRaw)})
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

// unknownFields is the reader's count of input fields the payload does not
// carry, as the runs row stores it.
func unknownFields(st sources.Stats) map[string]int64 {
	if st.UnknownFields == nil {
		return map[string]int64{}
	}
	return st.UnknownFields
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

// skippedCounts is the reader's count of what it did not import as it
// stands, as the runs row stores it (migration 004).
func skippedCounts(st sources.Stats) map[string]int64 {
	if st.Skipped == nil {
		return map[string]int64{}
	}
	return st.Skipped
}
