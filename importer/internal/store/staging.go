package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The staging lock is a session advisory lock per run: one process stages
// and plans, the others wait and then join the sending. It is taken on a
// connection of its own (the DBTX of these methods).

// TryLockRun takes the run's staging lock if it is free.
func (q *Queries) TryLockRun(ctx context.Context, run string) (bool, error) {
	var got bool
	err := q.db.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+runLock+`)`, run).Scan(&got)
	return got, err
}

// UnlockRun releases the run's staging lock.
func (q *Queries) UnlockRun(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, `SELECT pg_advisory_unlock(`+runLock+`)`, run)
	return err
}

// LockRunTx takes the run's staging lock for the transaction: no process
// stages or plans the run meanwhile.
func (q *Queries) LockRunTx(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, `SELECT pg_advisory_xact_lock(`+runLock+`)`, run)
	return err
}

// Staging is how far a run's staging got.
type Staging struct {
	Done, Planned bool
	Line          int64 // every record at or before it is staged
	Version       string
}

const selectStaging = `SELECT staging_done, planned, staged_line, source_version FROM kommo_import_runs WHERE name = $1`

// StagingState reads how far the run's staging got.
func (q *Queries) StagingState(ctx context.Context, run string) (Staging, error) {
	var s Staging
	err := q.db.QueryRow(ctx, selectStaging, run).Scan(&s.Done, &s.Planned, &s.Line, &s.Version)
	return s, err
}

// restartStaging starts a pass over the whole input: the counters of what
// the scope already had are counted again.
const restartStaging = `UPDATE kommo_import_runs SET staged_line = 0, known_sent = 0, known_other = 0, updated_at = now() WHERE name = $1`

// RestartStaging starts staging the run's input again from the start.
func (q *Queries) RestartStaging(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, restartStaging, run)
	return err
}

var createStageTables = []string{`
CREATE TEMP TABLE IF NOT EXISTS kommo_import_stage (
    msgid           text    NOT NULL,
    conversation_id text    NOT NULL,
    line            bigint  NOT NULL,
    msec_timestamp  bigint  NOT NULL,
    payload         bytea   NOT NULL,
    outgoing        boolean NOT NULL,
    media_path      text
) ON COMMIT DELETE ROWS`, `
CREATE TEMP TABLE IF NOT EXISTS kommo_import_stage_rejects (
    line   bigint NOT NULL,
    field  text   NOT NULL,
    reason text   NOT NULL,
    raw    bytea  NOT NULL,
    msgid  text   NOT NULL
) ON COMMIT DELETE ROWS`}

// CreateStageTables creates the session's temporary staging tables (their
// rows go at each commit).
func (q *Queries) CreateStageTables(ctx context.Context) error {
	for _, sql := range createStageTables {
		if _, err := q.db.Exec(ctx, sql); err != nil {
			return err
		}
	}
	return nil
}

// StageRow is one record to stage.
type StageRow struct {
	MsgID, ConversationID string
	Line, Msec            int64
	Payload               []byte
	Outgoing              bool
	// MediaPath is the local file message.media names ("": none): a path,
	// or the zip: URL of a file inside an archive (media.LocalRef).
	MediaPath string
}

// RejectRow is one record staging refused.
type RejectRow struct {
	Line          int64
	Field, Reason string
	Raw           []byte
	MsgID         string // "": the record had none (or none that can be stored)
}

// CopyStage puts a batch into the staging table (then InsertStaged).
func (q *Queries) CopyStage(ctx context.Context, rows []StageRow) error {
	_, err := q.db.CopyFrom(ctx, pgx.Identifier{"kommo_import_stage"},
		[]string{"msgid", "conversation_id", "line", "msec_timestamp", "payload", "outgoing", "media_path"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.MsgID, r.ConversationID, r.Line, r.Msec, r.Payload, r.Outgoing, nullString(r.MediaPath)}, nil
		}))
	return err
}

const tryMessage = `
INSERT INTO kommo_import_messages (scope_id, msgid, run_name, conversation_id, line, msec_timestamp, payload, outgoing, media_path)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (scope_id, msgid) DO NOTHING`

// TryMessage inserts one record into the messages table as InsertStaged
// would: for a batch written record by record, in a transaction rolled back
// afterwards, so that a value the database cannot store or index is found
// record by record.
func (q *Queries) TryMessage(ctx context.Context, scope, run string, r StageRow) error {
	_, err := q.db.Exec(ctx, tryMessage, scope, r.MsgID, run, r.ConversationID, r.Line, r.Msec, r.Payload, r.Outgoing, nullString(r.MediaPath))
	return err
}

const insertStaged = `
INSERT INTO kommo_import_messages (scope_id, msgid, run_name, conversation_id, line, msec_timestamp, payload, outgoing, media_path)
SELECT $1, msgid, $2, conversation_id, line, msec_timestamp, payload, outgoing, media_path
FROM kommo_import_stage
ORDER BY line
ON CONFLICT (scope_id, msgid) DO NOTHING`

// InsertStaged moves the staged batch into the messages table, skipping the
// msgids the scope has; it returns how many were new.
func (q *Queries) InsertStaged(ctx context.Context, scope, run string) (int64, error) {
	tag, err := q.db.Exec(ctx, insertStaged, scope, run)
	return tag.RowsAffected(), err
}

// takeOver moves the batch's msgids held unsent by runs nobody works (or
// abandoned ones) to this run, with this input's payload and position. A
// failed message becomes pending again (the export may have fixed it); an
// in-doubt one keeps its state and attempts, so it is looked up before it
// is ever sent again. It returns how many came over.
const takeOver = `
WITH moved AS (
    UPDATE kommo_import_messages m
    SET run_name = $2, line = s.line, conversation_id = s.conversation_id, msec_timestamp = s.msec_timestamp,
        payload = s.payload, outgoing = s.outgoing, media_path = s.media_path,
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

// TakeOver takes the batch's msgids that runs nobody works hold unsent.
func (q *Queries) TakeOver(ctx context.Context, scope, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, takeOver, scope, run).Scan(&n)
	return n, err
}

// countKnown counts the batch's msgids that the scope already has from
// another run: sent (a re-sync skips them) or still to be sent by a live run.
const countKnown = `
SELECT count(*) FILTER (WHERE m.state = 'sent'), count(*) FILTER (WHERE m.state <> 'sent')
FROM kommo_import_stage s
JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = s.msgid
WHERE m.run_name <> $2`

// CountKnown counts the batch's msgids another run of the scope has: sent,
// and not sent.
func (q *Queries) CountKnown(ctx context.Context, scope, run string) (sent, other int64, err error) {
	err = q.db.QueryRow(ctx, countKnown, scope, run).Scan(&sent, &other)
	return sent, other, err
}

// CopyRejects puts a batch's rejected records into the session's table
// (then InsertRejects).
func (q *Queries) CopyRejects(ctx context.Context, rows []RejectRow) error {
	_, err := q.db.CopyFrom(ctx, pgx.Identifier{"kommo_import_stage_rejects"},
		[]string{"line", "field", "reason", "raw", "msgid"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.Line, r.Field, r.Reason, r.Raw, r.MsgID}, nil
		}))
	return err
}

// insertRejects records the batch's rejects, each with the hash of the
// record as read and its msgid, and known_from: an earlier run of the
// scope ($2) that rejected the same record (the same bytes, or the same
// msgid), which a nightly re-sync does not report as new again.
const insertRejects = `
INSERT INTO kommo_import_rejects AS j (run_name, line, field, reason, raw, raw_hash, msgid, known_from)
SELECT $1, s.line, s.field, s.reason, s.raw, sha256(s.raw), NULLIF(s.msgid, ''),
       (SELECT o.run_name FROM kommo_import_rejects o JOIN kommo_import_runs r ON r.name = o.run_name
        WHERE r.scope_id = $2 AND o.run_name <> $1 AND r.created_at < me.created_at
          AND (o.raw_hash = sha256(s.raw) OR (s.msgid <> '' AND o.msgid = s.msgid))
        ORDER BY r.created_at LIMIT 1)
FROM kommo_import_stage_rejects s, (SELECT created_at FROM kommo_import_runs WHERE name = $1) me
ON CONFLICT (run_name, line) DO UPDATE SET field = EXCLUDED.field, reason = EXCLUDED.reason, raw = EXCLUDED.raw,
    raw_hash = EXCLUDED.raw_hash, msgid = EXCLUDED.msgid, known_from = EXCLUDED.known_from, created_at = now(),
    acked_at = CASE WHEN j.raw_hash = EXCLUDED.raw_hash THEN j.acked_at END`

// InsertRejects records the batch's rejects with the run of scope, telling
// those an earlier run of the scope rejected too.
func (q *Queries) InsertRejects(ctx context.Context, scope, run string) error {
	_, err := q.db.Exec(ctx, insertRejects, run, scope)
	return err
}

// StagingCheckpoint is what a staging batch commits with its rows.
type StagingCheckpoint struct {
	Run                                    string
	Line                                   int64 // the source position the batch reaches
	Inserted, Taken, KnownSent, KnownOther int64
	Records, Duplicates                    int64            // the reader's counts at that position
	Unknown                                map[string]int64 // input fields not part of the payload
	// Skipped counts, by reason, what the source held that was not imported
	// as it stands; Conversations the distinct conversations among the
	// valid records read.
	Skipped       map[string]int64
	Conversations int64
	Done          bool // staging is complete with this batch
}

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

// CheckpointStaging records a batch's position and counts.
func (q *Queries) CheckpointStaging(ctx context.Context, c StagingCheckpoint) error {
	unknown, skipped := c.Unknown, c.Skipped
	if unknown == nil {
		unknown = map[string]int64{}
	}
	if skipped == nil {
		skipped = map[string]int64{}
	}
	_, err := q.db.Exec(ctx, checkpointStaging, pgx.NamedArgs{
		"run": c.Run, "line": c.Line, "inserted": c.Inserted, "taken": c.Taken,
		"known_sent": c.KnownSent, "known_other": c.KnownOther,
		"records": c.Records, "duplicates": c.Duplicates, "unknown": unknown, "done": c.Done,
		"skipped": skipped, "conversations": c.Conversations,
	})
	return err
}

// nullString is s, or NULL for "".
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
