package store

import "context"

// planSilent decides the silent flag of the run's unsent messages in one
// pass, for all its conversations or (retry) those in $4. The loud message
// of a conversation is the newest one the scope holds for it, from any run
// (for newest-incoming: the newest incoming one): when it is already sent,
// or another run's, all of this run's messages are silent. A message in
// doubt keeps the flag it may have gone out with.
const planSilent = `
UPDATE kommo_import_messages m
SET silent = ($2 = 'none' OR m.msgid IS DISTINCT FROM n.msgid)
FROM (SELECT DISTINCT conversation_id FROM kommo_import_messages
      WHERE run_name = $1 AND ($4::text[] IS NULL OR conversation_id = ANY($4))) c
LEFT JOIN LATERAL (
    SELECT msgid FROM kommo_import_messages
    WHERE scope_id = $3 AND conversation_id = c.conversation_id AND ($2 <> 'newest-incoming' OR NOT outgoing)
    ORDER BY msec_timestamp DESC, seq DESC
    LIMIT 1
) n ON true
WHERE m.run_name = $1 AND m.conversation_id = c.conversation_id
  AND (m.state = 'pending' OR (m.state = 'sending' AND m.silent IS NULL))`

// planConversations lists the run's conversations with messages to send;
// a conversation planned before (retry, a run that took messages over) is
// opened again with its count.
const planConversations = `
INSERT INTO kommo_import_conversations (run_name, conversation_id, messages)
SELECT $1, conversation_id, count(*)
FROM kommo_import_messages
WHERE run_name = $1 AND state IN ('pending', 'sending') AND ($2::text[] IS NULL OR conversation_id = ANY($2))
GROUP BY conversation_id
ON CONFLICT (run_name, conversation_id) DO UPDATE SET done = false, held = false, messages = EXCLUDED.messages`

// Plan decides the silent flags and lists the conversations to send, of the
// whole run (convs nil) or of the conversations convs.
func (q *Queries) Plan(ctx context.Context, run, scope, notify string, convs []string) error {
	if _, err := q.db.Exec(ctx, planSilent, run, notify, scope, convs); err != nil {
		return err
	}
	_, err := q.db.Exec(ctx, planConversations, run, convs)
	return err
}

// RetryRun is what retry reads of a run, its row locked.
type RetryRun struct {
	Scope, Notify string
	Planned       bool // staged and planned
}

const selectRunForRetry = `SELECT scope_id, notify, staging_done AND planned FROM kommo_import_runs WHERE name = $1 FOR UPDATE`

// RunForRetry locks the run's row and reads it; pgx.ErrNoRows for an
// unknown run.
func (q *Queries) RunForRetry(ctx context.Context, run string) (RetryRun, error) {
	var r RetryRun
	err := q.db.QueryRow(ctx, selectRunForRetry, run).Scan(&r.Scope, &r.Notify, &r.Planned)
	return r, err
}

// Selection picks failed messages of a run: those of MsgIDs and of
// Conversations; both empty: every failed message.
type Selection struct {
	MsgIDs, Conversations []string
}

// failedIn is the condition, on the messages table, that a message of run
// $1 is failed and selected ($2 msgids, $3 conversations).
const failedIn = `run_name = $1 AND state = 'failed'
      AND ((cardinality($2::text[]) = 0 AND cardinality($3::text[]) = 0)
           OR msgid = ANY($2) OR conversation_id = ANY($3))`

// settleFailed moves the run's selected failed messages to $4: back to
// pending (retry: their error cleared; attempts is kept, it counts every
// attempt ever made) or skipped (given up: never sent). Either way they no
// longer hold their conversations, which are opened again. It returns how
// many and their conversations.
const settleFailed = `
WITH moved AS (
    UPDATE kommo_import_messages SET state = $4, last_error = CASE WHEN $4 = 'pending' THEN NULL ELSE last_error END
    WHERE ` + failedIn + `
    RETURNING conversation_id
), reopened AS (
    UPDATE kommo_import_conversations c SET held = false, done = false
    WHERE c.run_name = $1 AND c.conversation_id IN (SELECT conversation_id FROM moved)
)
SELECT count(*), COALESCE(array_agg(DISTINCT conversation_id), '{}') FROM moved`

func (q *Queries) settleFailed(ctx context.Context, run string, sel Selection, to State) (n int64, convs []string, err error) {
	err = q.db.QueryRow(ctx, settleFailed, run, nonNil(sel.MsgIDs), nonNil(sel.Conversations), to).Scan(&n, &convs)
	return n, convs, err
}

// ResetFailed puts the run's selected failed messages back to pending; it
// returns how many and their conversations.
func (q *Queries) ResetFailed(ctx context.Context, run string, sel Selection) (int64, []string, error) {
	return q.settleFailed(ctx, run, sel, StatePending)
}

// SkipFailed gives the run's selected failed messages up; it returns how
// many and their conversations.
func (q *Queries) SkipFailed(ctx context.Context, run string, sel Selection) (int64, []string, error) {
	return q.settleFailed(ctx, run, sel, StateSkipped)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
