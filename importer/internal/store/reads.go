package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// What operators read: a run's status, its failed messages and rejects,
// the conversations verify reads back, the counts metrics export.

// RunStatusRow is what the database holds of a run, with its messages
// counted by state.
type RunStatusRow struct {
	Name, Scope, Source, Version, Notify       string
	Rate                                       float64
	StagingDone, Planned                       bool
	StagedLine, Records, Staged                int64
	KnownSent, KnownOther, TakenOver           int64
	HandedOver                                 int64 // taken over by later runs
	Duplicates, Rejected                       int64
	Pending, Sending, Sent, Failed, Reconciled int64
	GivenUp                                    int64 // given up by retry --skip, --older skip
	Parked, QuotesDropped                      int64
	// Held conversations wait behind a failed message (on_failure hold),
	// with HeldMessages messages not sent, HeldSending of them in doubt.
	Held, HeldMessages, HeldSending     int64
	OnFailure                           string
	UnknownFields                       map[string]int64
	Skipped                             map[string]int64 // what the source held that was not imported, by reason
	Conversations                       int64
	StopReason                          string
	StoppedAt                           time.Time // when the last invocation that recorded its end ended; zero: none did
	Processes                           int64     // live
	PausedUntil                         time.Time
	CreatedAt, UpdatedAt                time.Time
	ProgressAt, FinishedAt, AbandonedAt time.Time // zero: never
	// Lost is the process of the run that was last heard of (its last
	// heartbeat) after the last recorded end, and is not alive: it died
	// without recording how (kill -9, a crash, a host cut off). Zero
	// LostAt: none.
	LostHost string
	LostPID  int
	LostAt   time.Time
	// Older counts the run's messages that planning found older than their
	// chat's newest sent message, in OlderConversations chats; OlderMode
	// is what the run does with them (send or skip).
	Older, OlderConversations int64
	OlderMode                 string
	// RejectedKnown of the rejects an earlier run of the scope rejected
	// too; RejectedAcked (of the rest) were acknowledged (runs ack);
	// MaxRejects is how many new ones the run allows.
	RejectedKnown, RejectedAcked, MaxRejects int64
}

const selectStatus = `
SELECT r.name, r.scope_id, r.source, r.source_version, r.notify, r.rate, r.staging_done, r.planned, r.staged_line,
       r.records, r.staged, r.known_sent, r.known_other, r.taken_over, r.handed_over, r.duplicates, r.rejected,
       COALESCE(s.pending, 0), COALESCE(s.sending, 0), COALESCE(s.sent, 0), COALESCE(s.failed, 0), COALESCE(s.reconciled, 0),
       COALESCE(s.skipped, 0),
       (SELECT count(*) FROM kommo_import_conversations c WHERE c.run_name = r.name AND NOT c.done AND NOT c.held AND c.not_before > now()),
       (SELECT count(*) FROM kommo_import_conversations c WHERE c.run_name = r.name AND c.held),
       h.messages, h.sending,
       r.on_failure, r.skipped, r.conversations,
       r.quotes_dropped, r.unknown_fields, COALESCE(r.stop_reason, ''), COALESCE(r.stopped_at, 'epoch'),
       (SELECT count(*) FROM kommo_import_live_processes p WHERE p.run_name = r.name),
       COALESCE((SELECT paused_until FROM kommo_import_pacer WHERE scope_id = r.scope_id), 'epoch'),
       r.created_at, r.updated_at,
       COALESCE(GREATEST(r.progress_at, s.last_sent), 'epoch'),
       COALESCE(r.finished_at, 'epoch'), COALESCE(r.abandoned_at, 'epoch'),
       COALESCE(lost.host, ''), COALESCE(lost.pid, 0), COALESCE(lost.heartbeat_at, 'epoch'),
       r.older_messages, r.older_conversations, r.older,
       (SELECT count(*) FROM kommo_import_rejects j WHERE j.run_name = r.name AND j.known_from IS NOT NULL),
       (SELECT count(*) FROM kommo_import_rejects j WHERE j.run_name = r.name AND j.known_from IS NULL AND j.acked_at IS NOT NULL),
       r.max_rejects
FROM kommo_import_runs r
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE state = 'pending')  AS pending,
           count(*) FILTER (WHERE state = 'sending')  AS sending,
           count(*) FILTER (WHERE state = 'sent')     AS sent,
           count(*) FILTER (WHERE state = 'failed')   AS failed,
           count(*) FILTER (WHERE reconciled)         AS reconciled,
           count(*) FILTER (WHERE state = 'skipped')  AS skipped,
           max(sent_at) FILTER (WHERE state = 'sent') AS last_sent
    FROM kommo_import_messages m WHERE m.run_name = r.name
) s ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS messages, count(*) FILTER (WHERE m.state = 'sending') AS sending
    FROM kommo_import_messages m JOIN kommo_import_conversations c
        ON c.run_name = m.run_name AND c.conversation_id = m.conversation_id AND c.held
    WHERE m.run_name = r.name AND m.state IN ('pending', 'sending')
) h ON true
LEFT JOIN LATERAL (
    SELECT p.host, p.pid, p.heartbeat_at FROM kommo_import_processes p
    WHERE p.run_name = r.name AND p.heartbeat_at > COALESCE(r.stopped_at, '-infinity')
      AND p.process_id IS DISTINCT FROM r.stopped_by
      AND NOT EXISTS (SELECT 1 FROM kommo_import_live_processes l WHERE l.run_name = p.run_name AND l.process_id = p.process_id)
    ORDER BY p.heartbeat_at DESC
    LIMIT 1
) lost ON true`

func scanStatus(row pgx.CollectableRow) (RunStatusRow, error) {
	var s RunStatusRow
	err := row.Scan(&s.Name, &s.Scope, &s.Source, &s.Version, &s.Notify, &s.Rate, &s.StagingDone, &s.Planned, &s.StagedLine,
		&s.Records, &s.Staged, &s.KnownSent, &s.KnownOther, &s.TakenOver, &s.HandedOver, &s.Duplicates, &s.Rejected,
		&s.Pending, &s.Sending, &s.Sent, &s.Failed, &s.Reconciled, &s.GivenUp, &s.Parked, &s.Held, &s.HeldMessages, &s.HeldSending,
		&s.OnFailure, &s.Skipped, &s.Conversations,
		&s.QuotesDropped, &s.UnknownFields, &s.StopReason, &s.StoppedAt, &s.Processes,
		&s.PausedUntil, &s.CreatedAt, &s.UpdatedAt, &s.ProgressAt, &s.FinishedAt, &s.AbandonedAt,
		&s.LostHost, &s.LostPID, &s.LostAt,
		&s.Older, &s.OlderConversations, &s.OlderMode, &s.RejectedKnown, &s.RejectedAcked, &s.MaxRejects)
	for _, t := range []*time.Time{&s.PausedUntil, &s.ProgressAt, &s.FinishedAt, &s.AbandonedAt, &s.StoppedAt, &s.LostAt} {
		if t.Unix() == 0 {
			*t = time.Time{}
		}
	}
	return s, err
}

// RunStatus reads one run's status; ok is false for an unknown run.
func (q *Queries) RunStatus(ctx context.Context, run string) (s RunStatusRow, ok bool, err error) {
	rows, err := q.db.Query(ctx, selectStatus+` WHERE r.name = $1`, run)
	if err != nil {
		return s, false, err
	}
	list, err := pgx.CollectRows(rows, scanStatus)
	if err != nil || len(list) == 0 {
		return s, false, err
	}
	return list[0], true, nil
}

// RunStatuses reads every run's status, newest first.
func (q *Queries) RunStatuses(ctx context.Context) ([]RunStatusRow, error) {
	rows, err := q.db.Query(ctx, selectStatus+` ORDER BY r.created_at DESC, r.name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanStatus)
}

// LiveProcess is a live process working a run.
type LiveProcess struct {
	ID          string
	Host        string
	PID         int
	StartedAt   time.Time
	HeartbeatAt time.Time
}

const selectLiveProcesses = `
SELECT process_id, host, pid, started_at, heartbeat_at FROM kommo_import_live_processes
WHERE run_name = $1 ORDER BY started_at, process_id`

// LiveProcesses lists the run's live processes, oldest first.
func (q *Queries) LiveProcesses(ctx context.Context, run string) ([]LiveProcess, error) {
	rows, err := q.db.Query(ctx, selectLiveProcesses, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[LiveProcess])
}

const selectOtherRuns = `
SELECT DISTINCT o.run_name
FROM kommo_import_runs r
JOIN kommo_import_messages o ON o.scope_id = r.scope_id AND o.run_name <> r.name AND o.state IN ('pending', 'sending', 'failed')
WHERE r.name = $1 AND r.known_other > 0
ORDER BY 1 LIMIT 10`

// OtherRuns names (at most 10) runs of the scope that hold unsent msgids
// this run skipped.
func (q *Queries) OtherRuns(ctx context.Context, run string) ([]string, error) {
	rows, err := q.db.Query(ctx, selectOtherRuns, run)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

const selectProgressBase = `
SELECT count(*), count(*) FILTER (WHERE state IN ('sent', 'failed', 'skipped'))
FROM kommo_import_messages WHERE run_name = $1`

// Progress counts the run's messages, and those sent or failed.
func (q *Queries) Progress(ctx context.Context, run string) (total, done int64, err error) {
	err = q.db.QueryRow(ctx, selectProgressBase, run).Scan(&total, &done)
	return total, done, err
}

const selectStates = `SELECT state, count(*) FROM kommo_import_messages WHERE run_name = $1 GROUP BY state`

// StateCounts counts the run's messages by state.
func (q *Queries) StateCounts(ctx context.Context, run string) (map[State]int64, error) {
	rows, err := q.db.Query(ctx, selectStates, run)
	if err != nil {
		return nil, err
	}
	out := map[State]int64{}
	var st State
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		out[st] = n
		return nil
	})
	return out, err
}

// FailedRow is a message the API refused for good.
type FailedRow struct {
	MsgID, ConversationID string
	Line                  int64
	Attempts              int
	LastError             string
}

const selectFailed = `
SELECT msgid, conversation_id, line, attempts, COALESCE(last_error, '')
FROM kommo_import_messages
WHERE run_name = $1 AND state = 'failed'
ORDER BY line, msgid`

// EachFailed streams the run's failed messages in source order; fn's error
// stops it. fn must not keep m: it is reused.
func (q *Queries) EachFailed(ctx context.Context, run string, fn func(m *FailedRow) error) error {
	rows, err := q.db.Query(ctx, selectFailed, run)
	if err != nil {
		return err
	}
	var m FailedRow
	_, err = pgx.ForEachRow(rows, []any{&m.MsgID, &m.ConversationID, &m.Line, &m.Attempts, &m.LastError}, func() error { return fn(&m) })
	return err
}

// RejectedRow is a source record staging refused.
type RejectedRow struct {
	Line          int64
	Field, Reason string
	Raw           []byte
	MsgID         string // the record's, when it had one
	KnownFrom     string // an earlier run of the scope that rejected it too
	Acked         bool   // acknowledged by runs ack
}

const selectRejects = `
SELECT line, field, reason, raw, COALESCE(msgid, ''), COALESCE(known_from, ''), acked_at IS NOT NULL
FROM kommo_import_rejects
WHERE run_name = $1
ORDER BY line`

// EachReject streams the run's rejects in source order, as EachFailed.
func (q *Queries) EachReject(ctx context.Context, run string, fn func(r *RejectedRow) error) error {
	rows, err := q.db.Query(ctx, selectRejects, run)
	if err != nil {
		return err
	}
	var r RejectedRow
	_, err = pgx.ForEachRow(rows, []any{&r.Line, &r.Field, &r.Reason, &r.Raw, &r.MsgID, &r.KnownFrom, &r.Acked}, func() error { return fn(&r) })
	return err
}

// VerifyConv is a conversation verify reads back.
type VerifyConv struct{ ID, ChatID string }

// A conversation the run's verification has checked (kommo_import_verified)
// is not listed again: verify --resume goes on after it.
const selectVerifyConvs = `
SELECT m.conversation_id, COALESCE(min(c.chat_id), min(m.kommo_chat_id), '')
FROM kommo_import_messages m
JOIN kommo_import_runs r ON r.name = m.run_name
LEFT JOIN kommo_import_chats c ON c.scope_id = r.scope_id AND c.conversation_id = m.conversation_id
WHERE m.run_name = $1 AND m.state = 'sent' AND m.conversation_id > $2
  AND NOT EXISTS (SELECT 1 FROM kommo_import_verified v WHERE v.run_name = $1 AND v.conversation_id = m.conversation_id)
GROUP BY m.conversation_id
ORDER BY m.conversation_id
LIMIT $3`

// VerifyConversations lists (at most limit of) the run's conversations with
// sent messages after the id after, in id order, that its verification has
// not checked yet.
func (q *Queries) VerifyConversations(ctx context.Context, run, after string, limit int) ([]VerifyConv, error) {
	rows, err := q.db.Query(ctx, selectVerifyConvs, run, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[VerifyConv])
}

const selectVerifySample = `
SELECT conversation_id, chat_id FROM (
    SELECT m.conversation_id, COALESCE(min(c.chat_id), min(m.kommo_chat_id), '') AS chat_id
    FROM kommo_import_messages m
    JOIN kommo_import_runs r ON r.name = m.run_name
    LEFT JOIN kommo_import_chats c ON c.scope_id = r.scope_id AND c.conversation_id = m.conversation_id
    WHERE m.run_name = $1 AND m.state = 'sent'
      AND NOT EXISTS (SELECT 1 FROM kommo_import_verified v WHERE v.run_name = $1 AND v.conversation_id = m.conversation_id)
    GROUP BY m.conversation_id
) x
ORDER BY random()
LIMIT $2`

// VerifySample picks n random conversations of the run with sent messages
// that its verification has not checked yet.
func (q *Queries) VerifySample(ctx context.Context, run string, n int) ([]VerifyConv, error) {
	rows, err := q.db.Query(ctx, selectVerifySample, run, n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[VerifyConv])
}

const countVerifyConvs = `SELECT count(DISTINCT conversation_id) FROM kommo_import_messages WHERE run_name = $1 AND state = 'sent'`

// CountVerifyConversations counts the run's conversations with sent messages.
func (q *Queries) CountVerifyConversations(ctx context.Context, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countVerifyConvs, run).Scan(&n)
	return n, err
}

// VerifyMessage is one message of a conversation verify checks.
type VerifyMessage struct {
	MsgID string
	State State
	Msec  int64
	// SentAgo is how long ago it was recorded sent (state sent; else 0).
	SentAgo time.Duration
}

const selectVerifyMessages = `
SELECT msgid, state, msec_timestamp, COALESCE(extract(epoch FROM now() - sent_at), 0)::float8
FROM kommo_import_messages
WHERE run_name = $1 AND conversation_id = $2 AND ($3::text[] IS NULL OR msgid = ANY($3))`

// VerifyMessages lists the run's messages of one conversation; msgids, when
// not nil, picks some (verify reads them again after the history).
func (q *Queries) VerifyMessages(ctx context.Context, run, conv string, msgids []string) ([]VerifyMessage, error) {
	rows, err := q.db.Query(ctx, selectVerifyMessages, run, conv, msgids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (VerifyMessage, error) {
		var m VerifyMessage
		var ago float64
		err := r.Scan(&m.MsgID, &m.State, &m.Msec, &ago)
		m.SentAgo = Seconds(ago)
		return m, err
	})
}

// SentRow is a delivered message as Kommo knows it.
type SentRow struct {
	MsgID, ConversationID, KommoMsgID, KommoChatID string
	Msec                                           int64
	SentAt                                         time.Time
	Silent, Reconciled                             bool
}

// selectSent walks the run's index (run_name, conversation_id,
// msec_timestamp, seq): conversation by conversation, in the order sent. A
// message's chat id comes from the chats table when its row has none.
const selectSent = `
SELECT m.msgid, m.conversation_id, COALESCE(m.kommo_msgid, ''), COALESCE(m.kommo_chat_id, c.chat_id, ''),
       m.msec_timestamp, COALESCE(m.sent_at, 'epoch'::timestamptz), COALESCE(m.silent, true), m.reconciled
FROM kommo_import_messages m
LEFT JOIN kommo_import_chats c ON c.scope_id = m.scope_id AND c.conversation_id = m.conversation_id
WHERE m.run_name = $1 AND m.state = 'sent'
ORDER BY m.conversation_id, m.msec_timestamp, m.seq`

// EachSent streams the run's sent messages, conversation by conversation in
// the order sent, as EachFailed.
func (q *Queries) EachSent(ctx context.Context, run string, fn func(m *SentRow) error) error {
	rows, err := q.db.Query(ctx, selectSent, run)
	if err != nil {
		return err
	}
	var m SentRow
	_, err = pgx.ForEachRow(rows, []any{&m.MsgID, &m.ConversationID, &m.KommoMsgID, &m.KommoChatID, &m.Msec, &m.SentAt, &m.Silent, &m.Reconciled},
		func() error { return fn(&m) })
	return err
}
