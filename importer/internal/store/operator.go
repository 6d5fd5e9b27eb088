package store

import "context"

// The operator's statements (migrations/010): how an invocation starts,
// known rejects and their acknowledgement, backfills at planning.

const markStarted = `UPDATE kommo_import_runs SET stop_reason = NULL, updated_at = now() WHERE name = $1`

// MarkStarted records that an invocation works the run now: the reason an
// earlier one stopped is no longer the run's story (status would show it
// as current). MarkEnded records this one's.
func (q *Queries) MarkStarted(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, markStarted, run)
	return err
}
