package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

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

// ackRejects acknowledges the run's new rejects (not known from an earlier
// run): an operator has seen them, and they no longer make it incomplete.
const ackRejects = `
UPDATE kommo_import_rejects SET acked_at = now()
WHERE run_name = $1 AND acked_at IS NULL AND known_from IS NULL`

// AckRejects acknowledges the run's new rejects; it returns how many.
func (q *Queries) AckRejects(ctx context.Context, run string) (int64, error) {
	tag, err := q.db.Exec(ctx, ackRejects, run)
	return tag.RowsAffected(), err
}

const selectGivenUp = `
SELECT msgid, conversation_id, line, attempts, COALESCE(last_error, '')
FROM kommo_import_messages
WHERE run_name = $1 AND state = 'skipped'
ORDER BY line, msgid`

// EachGivenUp streams the run's given-up messages (retry --skip, --older
// skip) in source order, with the reason, as EachFailed.
func (q *Queries) EachGivenUp(ctx context.Context, run string, fn func(m *FailedRow) error) error {
	rows, err := q.db.Query(ctx, selectGivenUp, run)
	if err != nil {
		return err
	}
	var m FailedRow
	_, err = pgx.ForEachRow(rows, []any{&m.MsgID, &m.ConversationID, &m.Line, &m.Attempts, &m.LastError}, func() error { return fn(&m) })
	return err
}

const selectKnownFrom = `
SELECT DISTINCT known_from FROM kommo_import_rejects
WHERE run_name = $1 AND known_from IS NOT NULL ORDER BY 1 LIMIT 10`

// KnownFromRuns names (at most 10) the earlier runs that rejected the
// records this run's known rejects are.
func (q *Queries) KnownFromRuns(ctx context.Context, run string) ([]string, error) {
	rows, err := q.db.Query(ctx, selectKnownFrom, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
