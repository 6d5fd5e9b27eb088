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

// Older is what planning found of a run's messages older than what their
// chat already shows.
type Older struct {
	Messages, Conversations int64
	// Chats names the chats with the most of them (at most 10), most first.
	Chats []OlderChat
}

// OlderChat is one chat with older messages: how many, and the newest
// message its chat shows (sent, by any run of the scope).
type OlderChat struct {
	ConversationID string
	Messages       int64
	Shown          int64 // msec_timestamp of the newest message sent to the chat
}

// markOlder finds the run's pending messages older than the newest message
// the scope has sent to their chat (a backfill: Kommo shows them after
// it), records how many on the run, and with $3 gives them up (skipped,
// with the reason). It returns the chats with the most, and the totals.
const markOlder = `
WITH shown AS (
    SELECT c.conversation_id, n.msec AS newest
    FROM (SELECT DISTINCT conversation_id FROM kommo_import_messages WHERE run_name = $1 AND state = 'pending') c
    CROSS JOIN LATERAL (
        SELECT msec_timestamp AS msec FROM kommo_import_messages
        WHERE scope_id = $2 AND conversation_id = c.conversation_id AND state = 'sent'
        ORDER BY msec_timestamp DESC, seq DESC
        LIMIT 1
    ) n
), older AS (
    SELECT m.msgid, m.conversation_id, s.newest
    FROM kommo_import_messages m JOIN shown s ON s.conversation_id = m.conversation_id
    WHERE m.run_name = $1 AND m.state = 'pending' AND m.msec_timestamp < s.newest
), given AS (
    UPDATE kommo_import_messages m
    SET state = 'skipped',
        last_error = 'older than what its chat already shows (its newest message sent is from ' ||
                     to_char(to_timestamp(o.newest / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC): given up by --older skip'
    FROM older o
    WHERE $3 AND m.scope_id = $2 AND m.msgid = o.msgid AND m.run_name = $1
), per AS (
    SELECT conversation_id, count(*) AS n, max(newest) AS newest FROM older GROUP BY conversation_id
), recorded AS (
    UPDATE kommo_import_runs SET older_messages = (SELECT count(*) FROM older), older_conversations = (SELECT count(*) FROM per)
    WHERE name = $1
)
SELECT conversation_id, n, newest, (SELECT count(*) FROM older), (SELECT count(*) FROM per)
FROM per ORDER BY n DESC, conversation_id LIMIT 10`

// MarkOlder finds the run's messages older than what their chat already
// shows, records the counts on the run and, with skip, gives them up.
func (q *Queries) MarkOlder(ctx context.Context, run, scope string, skip bool) (Older, error) {
	var o Older
	rows, err := q.db.Query(ctx, markOlder, run, scope, skip)
	if err != nil {
		return o, err
	}
	var c OlderChat
	_, err = pgx.ForEachRow(rows, []any{&c.ConversationID, &c.Messages, &c.Shown, &o.Messages, &o.Conversations}, func() error {
		o.Chats = append(o.Chats, c)
		return nil
	})
	return o, err
}
