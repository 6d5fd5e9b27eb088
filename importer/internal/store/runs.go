package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// RunParams is what an invocation says of the run it works.
type RunParams struct {
	Name, Scope, Source, Version, Notify string
	Rate                                 float64
	OnFailure                            string // "hold" or "continue"
	// MaxRejects is how many new rejects the run allows (below 0: keep the
	// run's); Older what planning does with messages older than their
	// chat's newest sent one ("send" or "skip"; "": keep the run's).
	MaxRejects int64
	Older      string
}

// RunRow is a run's row as OpenRun finds it.
type RunRow struct {
	Scope, Source, Version, Notify, OnFailure string
	StagingDone, Abandoned, Finished          bool
}

const upsertRun = `
INSERT INTO kommo_import_runs AS r (name, scope_id, source, source_version, notify, rate, on_failure, max_rejects, older)
VALUES ($1, $2, $3, $4, $5, $6, $7, GREATEST($8, 0), COALESCE(NULLIF($9, ''), 'send'))
ON CONFLICT (name) DO UPDATE SET rate = EXCLUDED.rate, on_failure = EXCLUDED.on_failure, updated_at = now(),
    max_rejects = CASE WHEN $8 < 0 THEN r.max_rejects ELSE $8 END, older = COALESCE(NULLIF($9, ''), r.older)
RETURNING scope_id, source, source_version, notify, on_failure, staging_done, abandoned_at IS NOT NULL, finished_at IS NOT NULL`

// OpenRun creates the run's row, or returns the existing one (the rate is
// the invocation's).
func (q *Queries) OpenRun(ctx context.Context, p RunParams) (RunRow, error) {
	var r RunRow
	err := q.db.QueryRow(ctx, upsertRun, p.Name, p.Scope, p.Source, p.Version, p.Notify, p.Rate, p.OnFailure, p.MaxRejects, p.Older).
		Scan(&r.Scope, &r.Source, &r.Version, &r.Notify, &r.OnFailure, &r.StagingDone, &r.Abandoned, &r.Finished)
	return r, err
}

const restageVersion = `UPDATE kommo_import_runs SET source_version = $2, staged_line = 0, updated_at = now() WHERE name = $1`

// RestageVersion records a new version of a file whose run had not
// finished staging: staging reads it again from the start.
func (q *Queries) RestageVersion(ctx context.Context, run, version string) error {
	_, err := q.db.Exec(ctx, restageVersion, run, version)
	return err
}

// Generation is one run of a derived name: the name itself or a re-sync
// after it (name.2, name.3, ...).
type Generation struct {
	Name     string
	Finished bool // finished or abandoned
}

const selectGenerations = `
SELECT name, finished_at IS NOT NULL OR abandoned_at IS NOT NULL FROM kommo_import_runs
WHERE name = $1 OR name LIKE $2`

// Generations lists the runs named base or base.<anything>.
func (q *Queries) Generations(ctx context.Context, base string) ([]Generation, error) {
	rows, err := q.db.Query(ctx, selectGenerations, base, escapeLike(base)+".%")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Generation])
}

// markEnded records how an invocation of process $3 ended: the reason it
// stopped early (none when it did not), and when the run finished, once
// nothing is left.
const markEnded = `
UPDATE kommo_import_runs SET stop_reason = NULLIF($2, ''), stopped_at = now(), stopped_by = $3, updated_at = now(),
    finished_at = CASE
        WHEN finished_at IS NULL AND staging_done AND planned
             AND NOT EXISTS (SELECT 1 FROM kommo_import_conversations WHERE run_name = $1 AND NOT done AND NOT held)
        THEN now() ELSE finished_at END
WHERE name = $1`

// MarkEnded records the reason the invocation of process stopped early
// ("": it did not) and the run's end once nothing is left to send.
func (q *Queries) MarkEnded(ctx context.Context, run, reason, process string) error {
	_, err := q.db.Exec(ctx, markEnded, run, reason, process)
	return err
}

const markProgress = `UPDATE kommo_import_runs SET progress_at = now() WHERE name = $1`

// MarkProgress records that the run moved (status shows since when nothing did).
func (q *Queries) MarkProgress(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, markProgress, run)
	return err
}

const markPlanned = `UPDATE kommo_import_runs SET planned = true, updated_at = now() WHERE name = $1 AND NOT planned`

// MarkPlanned marks the run planned; false when it already was.
func (q *Queries) MarkPlanned(ctx context.Context, run string) (bool, error) {
	tag, err := q.db.Exec(ctx, markPlanned, run)
	return tag.RowsAffected() > 0, err
}

// Analyze refreshes the messages table's statistics: staging just loaded
// the rows, and without them the planner picks nested loops that take
// minutes on a large run.
func (q *Queries) Analyze(ctx context.Context) error {
	_, err := q.db.Exec(ctx, `ANALYZE kommo_import_messages`)
	return err
}

const selectRunScope = `SELECT scope_id FROM kommo_import_runs WHERE name = $1`

// RunScope is the run's scope; pgx.ErrNoRows for an unknown run.
func (q *Queries) RunScope(ctx context.Context, run string) (string, error) {
	var scope string
	err := q.db.QueryRow(ctx, selectRunScope, run).Scan(&scope)
	return scope, err
}

const selectRunExists = `SELECT EXISTS (SELECT 1 FROM kommo_import_runs WHERE name = $1)`

// RunExists reports whether the database has the run.
func (q *Queries) RunExists(ctx context.Context, run string) (bool, error) {
	var ok bool
	err := q.db.QueryRow(ctx, selectRunExists, run).Scan(&ok)
	return ok, err
}

const selectRunFinished = `SELECT EXISTS (SELECT 1 FROM kommo_import_runs WHERE name = $1 AND finished_at IS NOT NULL)`

// RunFinished reports whether the run exists and has finished.
func (q *Queries) RunFinished(ctx context.Context, run string) (bool, error) {
	var ok bool
	err := q.db.QueryRow(ctx, selectRunFinished, run).Scan(&ok)
	return ok, err
}

const lockRunRow = `SELECT abandoned_at IS NOT NULL FROM kommo_import_runs WHERE name = $1 FOR UPDATE`

// LockRunRow locks the run's row for the transaction and reports whether
// the run is abandoned; pgx.ErrNoRows for an unknown run.
func (q *Queries) LockRunRow(ctx context.Context, run string) (abandoned bool, err error) {
	err = q.db.QueryRow(ctx, lockRunRow, run).Scan(&abandoned)
	return abandoned, err
}

const countLive = `SELECT count(*) FROM kommo_import_live_processes WHERE run_name = $1`

// CountLive counts the live processes of the run.
func (q *Queries) CountLive(ctx context.Context, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countLive, run).Scan(&n)
	return n, err
}

const abandonRun = `
WITH leases AS (
    UPDATE kommo_import_conversations SET lease_owner = NULL, lease_until = NULL
    WHERE run_name = $1 AND lease_owner IS NOT NULL
)
UPDATE kommo_import_runs SET abandoned_at = now(), updated_at = now() WHERE name = $1`

// AbandonRun marks the run abandoned and frees its leases.
func (q *Queries) AbandonRun(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, abandonRun, run)
	return err
}

// countKept counts what makes a run's rows the scope's memory: messages
// sent, or in doubt (their request may have landed).
const countKept = `SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND state IN ('sent', 'sending')`

// CountKept counts the run's messages that were sent or are in doubt.
func (q *Queries) CountKept(ctx context.Context, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countKept, run).Scan(&n)
	return n, err
}

var deleteRunRows = []string{
	`DELETE FROM kommo_import_run_commands WHERE run_name = $1`,
	`DELETE FROM kommo_import_verified WHERE run_name = $1`,
	`DELETE FROM kommo_import_verifications WHERE run_name = $1`,
	`DELETE FROM kommo_import_messages WHERE run_name = $1`,
	`DELETE FROM kommo_import_conversations WHERE run_name = $1`,
	`DELETE FROM kommo_import_rejects WHERE run_name = $1`,
	`DELETE FROM kommo_import_media_uploads WHERE run_name = $1`,
	`DELETE FROM kommo_import_processes WHERE run_name = $1`,
	`DELETE FROM kommo_import_contact_links WHERE run_name = $1`,
	`DELETE FROM kommo_import_contact_matches WHERE run_name = $1`,
	`DELETE FROM kommo_import_runs WHERE name = $1`,
}

// DeleteRun removes every row of the run (in a transaction: WithTx).
func (q *Queries) DeleteRun(ctx context.Context, run string) error {
	for _, sql := range deleteRunRows {
		if _, err := q.db.Exec(ctx, sql, run); err != nil {
			return err
		}
	}
	return nil
}

const reopenRun = `UPDATE kommo_import_runs SET finished_at = NULL, updated_at = now() WHERE name = $1`

// ReopenRun clears finished_at so the next invocation records when it
// finished again.
func (q *Queries) ReopenRun(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, reopenRun, run)
	return err
}

func escapeLike(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '%' || c == '_' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// RunCommandRow is how to resume a run, as the command that started it last.
type RunCommandRow struct {
	ConfigFile, Resume, Workdir string
}

const upsertRunCommand = `
INSERT INTO kommo_import_run_commands (run_name, config_file, resume, workdir)
VALUES ($1, NULLIF($2, ''), $3, $4)
ON CONFLICT (run_name) DO UPDATE
SET config_file = EXCLUDED.config_file, resume = EXCLUDED.resume, workdir = EXCLUDED.workdir, updated_at = now()`

// SaveRunCommand records how to resume run.
func (q *Queries) SaveRunCommand(ctx context.Context, run string, c RunCommandRow) error {
	_, err := q.db.Exec(ctx, upsertRunCommand, run, c.ConfigFile, c.Resume, c.Workdir)
	return err
}

const selectRunCommand = `SELECT COALESCE(config_file, ''), resume, workdir FROM kommo_import_run_commands WHERE run_name = $1`

// RunCommand reads how to resume run; pgx.ErrNoRows when none was recorded.
func (q *Queries) RunCommand(ctx context.Context, run string) (RunCommandRow, error) {
	var c RunCommandRow
	err := q.db.QueryRow(ctx, selectRunCommand, run).Scan(&c.ConfigFile, &c.Resume, &c.Workdir)
	return c, err
}
