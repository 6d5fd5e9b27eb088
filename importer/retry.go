package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockRunTx takes the run's staging lock for the transaction: no process
// stages or plans the run while its failed messages are reset.
const lockRunTx = `SELECT pg_advisory_xact_lock(hashtextextended('kommo-import run ' || $1, 0))`

const selectRunForRetry = `SELECT scope_id, notify, staging_done AND planned FROM kommo_import_runs WHERE name = $1 FOR UPDATE`

// resetFailed puts the run's failed messages back to pending and returns
// their conversations. attempts is kept: it counts every attempt ever made.
const resetFailed = `
WITH reset AS (
    UPDATE kommo_import_messages SET state = 'pending', last_error = NULL
    WHERE run_name = $1 AND state = 'failed'
    RETURNING conversation_id
)
SELECT count(*), COALESCE(array_agg(DISTINCT conversation_id), '{}') FROM reset`

// reopenRun clears finished_at so the next Run records when it finished again.
const reopenRun = `UPDATE kommo_import_runs SET finished_at = NULL, updated_at = now() WHERE name = $1`

// ResetFailed puts every failed message of run back to pending, with its
// last error cleared and its silent flag decided again by the plan's rule,
// and marks their conversations not done, all in one transaction. A Run of
// the same run then sends them (it skips staging and planning, which are
// done). It returns how many messages were reset; ErrNoRun for an unknown
// run, ErrNotPlanned for one still staging.
func ResetFailed(ctx context.Context, pool *pgxpool.Pool, run string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockRunTx, run); err != nil {
			return err
		}
		var scope, notify string
		var planned bool
		err := tx.QueryRow(ctx, selectRunForRetry, run).Scan(&scope, &notify, &planned)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w %q", ErrNoRun, run)
		}
		if err != nil {
			return err
		}
		if !planned {
			return fmt.Errorf("%s: %w", run, ErrNotPlanned)
		}
		var convs []string
		if err := tx.QueryRow(ctx, resetFailed, run).Scan(&n, &convs); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		// The plan's rule again, for these conversations: a failed message
		// that was the newest was loud when it failed and is loud again;
		// any other stays silent.
		if err := plan(ctx, tx, run, scope, Notify(notify), convs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, reopenRun, run)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNoRun) || errors.Is(err, ErrNotPlanned) {
			return 0, err
		}
		return 0, fmt.Errorf("reset failed messages of %s: %w", run, err)
	}
	return n, nil
}
