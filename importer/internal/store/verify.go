package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Verify's checkpoint (migrations/010): one verification of a run at a
// time, and what it found in each conversation it checked, so that an
// interrupted verify goes on where it stopped (verify --resume) and its
// report covers every conversation checked, before and after.

// Verification is a run's latest verification.
type Verification struct {
	Sample   int
	Finished bool
	Checked  int64 // conversations checked so far
}

const selectVerification = `
SELECT v.sample, v.finished_at IS NOT NULL, (SELECT count(*) FROM kommo_import_verified d WHERE d.run_name = v.run_name)
FROM kommo_import_verifications v WHERE v.run_name = $1`

// LatestVerification reads the run's latest verification; ok is false when
// the run was never verified (by this version).
func (q *Queries) LatestVerification(ctx context.Context, run string) (v Verification, ok bool, err error) {
	err = q.db.QueryRow(ctx, selectVerification, run).Scan(&v.Sample, &v.Finished, &v.Checked)
	if IsNoRows(err) {
		return v, false, nil
	}
	return v, err == nil, err
}

var startVerification = []string{
	`DELETE FROM kommo_import_verified WHERE run_name = $1`,
	`INSERT INTO kommo_import_verifications (run_name, sample) VALUES ($1, $2)
     ON CONFLICT (run_name) DO UPDATE SET sample = EXCLUDED.sample, started_at = now(), updated_at = now(), finished_at = NULL`,
}

// StartVerification starts a new verification of the run, forgetting what
// the last one checked (in a transaction: WithTx).
func (q *Queries) StartVerification(ctx context.Context, run string, sample int) error {
	for i, sql := range startVerification {
		args := []any{run}
		if i == 1 {
			args = append(args, sample)
		}
		if _, err := q.db.Exec(ctx, sql, args...); err != nil {
			return err
		}
	}
	return nil
}

// Verified is what verify found in one conversation.
type Verified struct {
	ConversationID                                  string
	Checked, Found, Missing, Duplicated, Unexpected int64
	InFlight, OutOfOrder, Requests                  int64
	Issues                                          []VerifiedIssue
}

// VerifiedIssue is one message of a conversation that is not as it should
// be (or in flight), as the checkpoint keeps it.
type VerifiedIssue struct {
	Kind           string `json:"kind"` // missing, duplicated, unexpected, in_flight, out_of_order
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"`
	ChatID         string `json:"chat_id,omitempty"`
	Count          int    `json:"count,omitempty"`
	State          State  `json:"state,omitempty"`
	After          string `json:"after,omitempty"` // out_of_order: a newer message it arrived after
}

const saveVerified = `
INSERT INTO kommo_import_verified (run_name, conversation_id, checked, found, missing, duplicated, unexpected, in_flight, out_of_order, requests, issues)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (run_name, conversation_id) DO UPDATE SET
    checked = EXCLUDED.checked, found = EXCLUDED.found, missing = EXCLUDED.missing, duplicated = EXCLUDED.duplicated,
    unexpected = EXCLUDED.unexpected, in_flight = EXCLUDED.in_flight, out_of_order = EXCLUDED.out_of_order,
    requests = EXCLUDED.requests, issues = EXCLUDED.issues, checked_at = now()`

// SaveVerified records what verify found in one conversation of the run.
func (q *Queries) SaveVerified(ctx context.Context, run string, v Verified) error {
	issues := v.Issues
	if issues == nil {
		issues = []VerifiedIssue{}
	}
	_, err := q.db.Exec(ctx, saveVerified, run, v.ConversationID, v.Checked, v.Found, v.Missing, v.Duplicated, v.Unexpected,
		v.InFlight, v.OutOfOrder, v.Requests, issues)
	return err
}

const finishVerification = `UPDATE kommo_import_verifications SET finished_at = now(), updated_at = now() WHERE run_name = $1`

// FinishVerification records that the run's verification checked all it
// was to check.
func (q *Queries) FinishVerification(ctx context.Context, run string) error {
	_, err := q.db.Exec(ctx, finishVerification, run)
	return err
}

// VerifiedTotals sums what the run's verification found so far.
type VerifiedTotals struct {
	Conversations                                   int64
	Checked, Found, Missing, Duplicated, Unexpected int64
	InFlight, OutOfOrder, OutOfOrderChats, Requests int64
}

const selectVerifiedTotals = `
SELECT count(*), COALESCE(sum(checked), 0), COALESCE(sum(found), 0), COALESCE(sum(missing), 0), COALESCE(sum(duplicated), 0),
       COALESCE(sum(unexpected), 0), COALESCE(sum(in_flight), 0), COALESCE(sum(out_of_order), 0),
       count(*) FILTER (WHERE out_of_order > 0), COALESCE(sum(requests), 0)
FROM kommo_import_verified WHERE run_name = $1`

// VerifiedSums sums what the run's verification found so far.
func (q *Queries) VerifiedSums(ctx context.Context, run string) (VerifiedTotals, error) {
	var t VerifiedTotals
	err := q.db.QueryRow(ctx, selectVerifiedTotals, run).Scan(&t.Conversations, &t.Checked, &t.Found, &t.Missing, &t.Duplicated,
		&t.Unexpected, &t.InFlight, &t.OutOfOrder, &t.OutOfOrderChats, &t.Requests)
	return t, err
}

const selectVerifiedIssues = `
SELECT i.kind, i.msgid, i.conversation_id, COALESCE(i.chat_id, ''), COALESCE(i.count, 0), COALESCE(i.state, ''), COALESCE(i.after, '')
FROM kommo_import_verified v,
     jsonb_to_recordset(v.issues) AS i(kind text, msgid text, conversation_id text, chat_id text, count int, state text, after text)
WHERE v.run_name = $1 AND i.kind = $2
ORDER BY v.conversation_id, i.msgid
LIMIT $3`

// VerifiedIssues lists (at most limit of) the issues of one kind the run's
// verification found, by conversation and msgid.
func (q *Queries) VerifiedIssues(ctx context.Context, run, kind string, limit int) ([]VerifiedIssue, error) {
	rows, err := q.db.Query(ctx, selectVerifiedIssues, run, kind, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (VerifiedIssue, error) {
		var i VerifiedIssue
		err := r.Scan(&i.Kind, &i.MsgID, &i.ConversationID, &i.ChatID, &i.Count, &i.State, &i.After)
		return i, err
	})
}

// markMissing records, as failed with the reason, the run's messages that
// verify found absent from their chat although recorded sent longer ago
// than the window ($3 seconds): retry (or verify --repair) sends them. Their
// conversations are not held: the messages after them were sent.
const markMissing = `
UPDATE kommo_import_messages m
SET state = 'failed',
    last_error = 'verify: recorded sent at ' || to_char(m.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') ||
                 ' UTC (Kommo message ' || COALESCE(m.kommo_msgid, '?') || '), absent from its chat''s history at ' ||
                 to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC: lost; retry sends it again'
WHERE m.run_name = $1 AND m.msgid = ANY($2) AND m.state = 'sent' AND m.sent_at < now() - make_interval(secs => $3)
  AND m.scope_id = (SELECT scope_id FROM kommo_import_runs WHERE name = $1)
RETURNING m.msgid`

// MarkMissing records msgids of the run, sent longer ago than window and
// found missing, as failed; it returns those it marked.
func (q *Queries) MarkMissing(ctx context.Context, run string, msgids []string, window time.Duration) ([]string, error) {
	rows, err := q.db.Query(ctx, markMissing, run, msgids, window.Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// verifyMarked is the condition, on the messages table, that a message of
// run $1 is failed because verify found it missing (markMissing's reason).
const verifyMarked = `run_name = $1 AND state = 'failed' AND last_error LIKE 'verify: %'`

const countVerifyMarked = `SELECT count(*) FROM kommo_import_messages WHERE ` + verifyMarked

// CountVerifyMarked counts the run's messages that verify recorded as
// failed (found missing) and that no retry has sent since.
func (q *Queries) CountVerifyMarked(ctx context.Context, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countVerifyMarked, run).Scan(&n)
	return n, err
}

const selectVerifyMarked = `SELECT msgid FROM kommo_import_messages WHERE ` + verifyMarked + ` ORDER BY msgid`

// VerifyMarked lists the msgids CountVerifyMarked counts (verify --repair
// sends them).
func (q *Queries) VerifyMarked(ctx context.Context, run string) ([]string, error) {
	rows, err := q.db.Query(ctx, selectVerifyMarked, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
