package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// The dry run (run --dry-run): the source goes into a temporary table of
// the session, inside a READ ONLY transaction that is rolled back, and is
// compared with what the scope holds. Nothing durable is written: no
// message is staged, no msgid taken over, no run changed.

const createDryRunTable = `
CREATE TEMP TABLE IF NOT EXISTS kommo_import_dryrun (
    msgid           text    NOT NULL,
    conversation_id text    NOT NULL,
    line            bigint  NOT NULL,
    msec_timestamp  bigint  NOT NULL,
    outgoing        boolean NOT NULL
)`

// CreateDryRunTable creates the session's dry-run table (before the READ
// ONLY transaction: a read-only one may fill a temporary table, not create
// one).
func (q *Queries) CreateDryRunTable(ctx context.Context) error {
	_, err := q.db.Exec(ctx, createDryRunTable)
	return err
}

// AnalyzeDryRun gathers the dry-run table's statistics once it is filled
// (autovacuum never sees a temporary table; without them the planner
// guesses its size). Allowed in the READ ONLY transaction.
func (q *Queries) AnalyzeDryRun(ctx context.Context) error {
	_, err := q.db.Exec(ctx, `ANALYZE pg_temp.kommo_import_dryrun`)
	return err
}

// DropDryRunTable drops it.
func (q *Queries) DropDryRunTable(ctx context.Context) error {
	_, err := q.db.Exec(ctx, `DROP TABLE IF EXISTS pg_temp.kommo_import_dryrun`)
	return err
}

// CopyDryRun puts a batch of the source into the dry-run table.
func (q *Queries) CopyDryRun(ctx context.Context, rows []StageRow) error {
	_, err := q.db.CopyFrom(ctx, pgx.Identifier{"kommo_import_dryrun"},
		[]string{"msgid", "conversation_id", "line", "msec_timestamp", "outgoing"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			r := &rows[i]
			return []any{r.MsgID, r.ConversationID, r.Line, r.Msec, r.Outgoing}, nil
		}))
	return err
}

// DryRun is what a run of the source would do with each msgid, against
// what the scope holds now.
type DryRun struct {
	New         int64 // the scope does not have it: staged and sent
	AlreadySent int64 // sent by any run of the scope: skipped
	Own         int64 // this run has it, unsent: sent when it resumes
	OwnSettled  int64 // this run has it, failed or given up: retry's, not run's
	Held        int64 // another run a process works holds it unsent: skipped
	TakeOver    int64 // a run no process works (or an abandoned one) holds it unsent: taken over
	InDoubt     int64 // of Own and TakeOver, in doubt: looked up before it is sent
	// Conversations with something to send; Loud of them get a loud message
	// (the notify rule over everything the scope holds and the source has).
	Conversations, Loud int64
	HeldBy, TakenFrom   []string // the runs (at most 10 each)
}

// toSend is the condition, on the dry-run table d joined with the scope's
// row m (none: m.msgid IS NULL) and o, m's run, that a run of $2 would
// send the message: new, its own unsent, or one it takes over.
const toSend = `(m.msgid IS NULL
     OR (m.run_name = $2 AND m.state IN ('pending', 'sending'))
     OR (m.run_name <> $2 AND m.state <> 'sent'
         AND (o.abandoned_at IS NOT NULL OR NOT EXISTS (SELECT 1 FROM kommo_import_live_processes p WHERE p.run_name = m.run_name))))`

const dryRunCounts = `
WITH d AS (
    SELECT d.msgid, d.conversation_id, m.msgid AS known, m.run_name, m.state,
           (o.abandoned_at IS NULL AND EXISTS (SELECT 1 FROM kommo_import_live_processes p WHERE p.run_name = m.run_name)) AS live,
           ` + toSend + ` AS send
    FROM kommo_import_dryrun d
    LEFT JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = d.msgid
    LEFT JOIN kommo_import_runs o ON o.name = m.run_name
)
SELECT count(*) FILTER (WHERE known IS NULL),
       count(*) FILTER (WHERE state = 'sent'),
       count(*) FILTER (WHERE run_name = $2 AND state IN ('pending', 'sending')),
       count(*) FILTER (WHERE run_name = $2 AND state IN ('failed', 'skipped')),
       count(*) FILTER (WHERE run_name <> $2 AND state <> 'sent' AND live),
       count(*) FILTER (WHERE run_name <> $2 AND state <> 'sent' AND NOT live),
       count(*) FILTER (WHERE send AND state = 'sending'),
       count(DISTINCT conversation_id) FILTER (WHERE send),
       COALESCE((SELECT array_agg(r ORDER BY r) FROM (SELECT DISTINCT run_name AS r FROM d WHERE run_name <> $2 AND state <> 'sent' AND live LIMIT 10) x), '{}'),
       COALESCE((SELECT array_agg(r ORDER BY r) FROM (SELECT DISTINCT run_name AS r FROM d WHERE run_name <> $2 AND state <> 'sent' AND NOT live LIMIT 10) x), '{}')
FROM d`

// dryRunLoud counts the conversations whose loud message (the newest of
// the source's and the scope's, under the notify rule $3) is one a run
// would send. The source's newest comes from one sort of the dry-run table,
// the scope's from its index, a probe a conversation.
const dryRunLoud = `
WITH src AS (
    SELECT DISTINCT ON (conversation_id) conversation_id, msgid, msec_timestamp AS msec
    FROM kommo_import_dryrun
    WHERE $3 <> 'newest-incoming' OR NOT outgoing
    ORDER BY conversation_id, msec_timestamp DESC, line DESC
), newest AS (
    -- A message of the source not staged yet comes after the scope's of
    -- the same time (staging order breaks ties).
    SELECT s.conversation_id, CASE WHEN n.msec > s.msec THEN n.msgid ELSE s.msgid END AS msgid
    FROM src s LEFT JOIN LATERAL (
        SELECT msgid, msec_timestamp AS msec FROM kommo_import_messages
        WHERE scope_id = $1 AND conversation_id = s.conversation_id AND ($3 <> 'newest-incoming' OR NOT outgoing)
        ORDER BY msec_timestamp DESC, seq DESC
        LIMIT 1
    ) n ON true
)
SELECT count(*)
FROM newest x
JOIN kommo_import_dryrun d ON d.msgid = x.msgid
LEFT JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = x.msgid
LEFT JOIN kommo_import_runs o ON o.name = m.run_name
WHERE $3 <> 'none' AND ` + toSend

// DryRunCounts compares the dry-run table with what scope holds, for a run
// named run (which may not exist yet), under the notify rule notify.
func (q *Queries) DryRunCounts(ctx context.Context, scope, run, notify string) (DryRun, error) {
	var r DryRun
	err := q.db.QueryRow(ctx, dryRunCounts, scope, run).Scan(&r.New, &r.AlreadySent, &r.Own, &r.OwnSettled, &r.Held, &r.TakeOver,
		&r.InDoubt, &r.Conversations, &r.HeldBy, &r.TakenFrom)
	if err != nil {
		return r, err
	}
	err = q.db.QueryRow(ctx, dryRunLoud, scope, run, notify).Scan(&r.Loud)
	return r, err
}

// dryRunOlder finds the messages a run would send that are older than the
// newest message the scope has sent to their chat (markOlder's rule).
const dryRunOlder = `
WITH s AS (
    SELECT d.msgid, d.conversation_id, d.msec_timestamp
    FROM kommo_import_dryrun d
    LEFT JOIN kommo_import_messages m ON m.scope_id = $1 AND m.msgid = d.msgid
    LEFT JOIN kommo_import_runs o ON o.name = m.run_name
    WHERE ` + toSend + `
), shown AS (
    SELECT c.conversation_id, n.msec AS newest
    FROM (SELECT DISTINCT conversation_id FROM s) c CROSS JOIN LATERAL (
        SELECT msec_timestamp AS msec FROM kommo_import_messages
        WHERE scope_id = $1 AND conversation_id = c.conversation_id AND state = 'sent'
        ORDER BY msec_timestamp DESC, seq DESC
        LIMIT 1
    ) n
), older AS (
    SELECT s.conversation_id, sh.newest
    FROM s JOIN shown sh ON sh.conversation_id = s.conversation_id
    WHERE s.msec_timestamp < sh.newest
), per AS (
    SELECT conversation_id, count(*) AS n, max(newest) AS newest FROM older GROUP BY conversation_id
)
SELECT conversation_id, n, newest, (SELECT count(*) FROM older), (SELECT count(*) FROM per)
FROM per ORDER BY n DESC, conversation_id LIMIT 10`

// DryRunOlder finds what a run of the dry-run table would send older than
// what its chat already shows, as MarkOlder does at planning.
func (q *Queries) DryRunOlder(ctx context.Context, scope, run string) (Older, error) {
	var o Older
	rows, err := q.db.Query(ctx, dryRunOlder, scope, run)
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
