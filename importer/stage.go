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
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/kommo-import/kommo-import/sources"
)

// The staging lock is a session advisory lock per run: one process stages
// and plans, the others wait and then join the sending.
const (
	lockRun   = `SELECT pg_advisory_lock(hashtextextended('kommo-import run ' || $1, 0))`
	tryRun    = `SELECT pg_try_advisory_lock(hashtextextended('kommo-import run ' || $1, 0))`
	unlockRun = `SELECT pg_advisory_unlock(hashtextextended('kommo-import run ' || $1, 0))`
)

const createStageTable = `
CREATE TEMP TABLE IF NOT EXISTS kommo_import_stage (
    msgid           text   NOT NULL,
    conversation_id text   NOT NULL,
    line            bigint NOT NULL,
    msec_timestamp  bigint NOT NULL,
    payload         bytea  NOT NULL
) ON COMMIT DELETE ROWS`

const selectStaging = `SELECT staging_done, planned, staged_line FROM kommo_import_runs WHERE name = $1`

// countKnown counts the batch's msgids that the scope already has from
// another run: sent (a re-sync skips them) or still to be sent by that run.
const countKnown = `
SELECT count(*) FILTER (WHERE m.state = 'sent'), count(*) FILTER (WHERE m.state <> 'sent')
FROM kommo_import_stage s
JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = s.msgid
WHERE m.run_name <> $2`

const insertStaged = `
INSERT INTO kommo_import_messages (scope_id, msgid, run_name, conversation_id, line, msec_timestamp, payload)
SELECT $1, msgid, $2, conversation_id, line, msec_timestamp, payload
FROM kommo_import_stage
ORDER BY line
ON CONFLICT (scope_id, msgid) DO NOTHING`

const checkpointStaging = `
UPDATE kommo_import_runs SET
    staged_line  = $2,
    staged       = staged + $3,
    known_sent   = known_sent + $4,
    known_other  = known_other + $5,
    rejected     = rejected + $6,
    records      = $7,
    duplicates   = $8,
    staging_done = $9,
    updated_at   = now()
WHERE name = $1`

// maxRejectRaw caps the raw record stored with a reject.
const maxRejectRaw = 64 << 10

type stageRow struct {
	msgid, conversationID string
	line, msec            int64
	payload               []byte
}

type rejectRow struct {
	line          int64
	field, reason string
	raw           []byte
}

// stage reads the source into the messages table in batches, each committed
// with the source position it reached, then plans the run. It does both
// under the run's advisory lock; a process that finds the lock taken waits,
// then finds the work done.
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
		uctx, cancel := checkpointCtx(ctx)
		defer cancel()
		if _, err := conn.Exec(uctx, unlockRun, im.cfg.Run); err != nil {
			// Closing the session is the sure way to release the lock.
			_ = conn.Conn().Close(uctx)
		}
	}()

	var done, planned bool
	var stagedLine int64
	if err := conn.QueryRow(ctx, selectStaging, im.cfg.Run).Scan(&done, &planned, &stagedLine); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	if !done {
		im.stats.phase.Store(PhaseStaging)
		if err := im.stageSource(ctx, conn, stagedLine, soft); err != nil {
			return err
		}
	}
	if !planned {
		return im.planWith(ctx, conn)
	}
	return nil
}

func (im *Importer) stageSource(ctx context.Context, conn *pgxpool.Conn, stagedLine int64, soft <-chan struct{}) error {
	if im.cfg.Open == nil {
		return errors.New("stage: no source to read")
	}
	r, err := im.cfg.Open(ctx)
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	defer r.Close()
	if stagedLine > 0 {
		if !r.Resumable() {
			return fmt.Errorf("stage: this run's staging stopped at line %d of %s, which cannot be read again; "+
				"save the input to a file and start a new run from it (messages already staged are not staged twice)", stagedLine, r.Name())
		}
		im.log.Info("resuming staging", "run", im.cfg.Run, "after_line", stagedLine)
	} else if !r.Resumable() {
		im.log.Warn("staging from a stream that cannot be read again: if this run is interrupted while staging, it cannot resume staging", "source", r.Name())
	}
	if _, err := conn.Exec(ctx, createStageTable); err != nil {
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
			if err := im.flushStage(gctx, conn, b); err != nil {
				return err
			}
			last = b
			if !b.done && stopped(soft) {
				return fmt.Errorf("%w while staging at line %d", ErrInterrupted, b.lastLine)
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	im.log.Info("staging done", "run", im.cfg.Run, "records", last.stats.Records, "rejected", last.stats.Rejected,
		"duplicates", last.stats.Duplicates, "elapsed", time.Since(started).Round(time.Millisecond))
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
			return fmt.Errorf("stage: read %s: %w", r.Name(), err)
		default:
			im.stats.read.Add(1)
			if rec.Line <= stagedLine {
				continue
			}
			payload, err := json.Marshal(&rec.Payload)
			if err != nil {
				return fmt.Errorf("stage: %s:%d: %w", r.Name(), rec.Line, err)
			}
			b.rows = append(b.rows, stageRow{rec.Payload.MsgID, rec.Payload.ConversationID, rec.Line, rec.Payload.MsecTimestamp, payload})
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

func (im *Importer) flushStage(ctx context.Context, conn *pgxpool.Conn, sb stageBatch) error {
	batch, rejects, st := sb.rows, sb.rejects, sb.stats
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var inserted, knownSent, knownOther int64
		if len(batch) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"kommo_import_stage"},
				[]string{"msgid", "conversation_id", "line", "msec_timestamp", "payload"},
				pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
					b := &batch[i]
					return []any{b.msgid, b.conversationID, b.line, b.msec, b.payload}, nil
				}))
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
			if inserted < int64(len(batch)) {
				if err := tx.QueryRow(ctx, countKnown, im.cfg.ScopeID, im.cfg.Run).Scan(&knownSent, &knownOther); err != nil {
					return err
				}
			}
		}
		if len(rejects) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"kommo_import_rejects"},
				[]string{"run_name", "line", "field", "reason", "raw"},
				pgx.CopyFromSlice(len(rejects), func(i int) ([]any, error) {
					r := &rejects[i]
					return []any{im.cfg.Run, r.line, r.field, r.reason, r.raw}, nil
				}))
			if err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, checkpointStaging, im.cfg.Run, sb.lastLine, inserted, knownSent, knownOther,
			int64(len(rejects)), st.Records, st.Duplicates, sb.done)
		return err
	})
	if err != nil {
		return fmt.Errorf("stage: batch ending at line %d: %w", sb.lastLine, err)
	}
	return nil
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
