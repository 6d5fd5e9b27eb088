package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// FailedMessage is a message the API refused for good: what the operator
// must look at before a retry.
type FailedMessage struct {
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"`
	Line           int64  `json:"line"` // position in the run's source
	Attempts       int    `json:"attempts"`
	LastError      string `json:"last_error"` // the API's answer
}

// Reject is a source record that staging refused.
type Reject struct {
	Line   int64  `json:"line"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Raw    []byte `json:"raw"` // the record as read, capped at 64 KiB
}

// SentMessage is a delivered message as Kommo knows it: the customer's
// record of what went where.
type SentMessage struct {
	MsgID          string    `json:"msgid"`
	ConversationID string    `json:"conversation_id"`
	KommoMsgID     string    `json:"kommo_message_id"`
	KommoChatID    string    `json:"kommo_chat_id"`
	MessageTime    time.Time `json:"message_time"` // the message's own timestamp (msec_timestamp)
	SentAt         time.Time `json:"sent_at"`      // when Kommo accepted it (or a look-up found it)
	Silent         bool      `json:"silent"`
	Reconciled     bool      `json:"reconciled"` // found in the chat's history after an in-doubt attempt
}

const selectRunExists = `SELECT true FROM kommo_import_runs WHERE name = $1`

const selectFailed = `
SELECT msgid, conversation_id, line, attempts, COALESCE(last_error, '')
FROM kommo_import_messages
WHERE run_name = $1 AND state = 'failed'
ORDER BY line, msgid`

const selectRejects = `
SELECT line, field, reason, raw
FROM kommo_import_rejects
WHERE run_name = $1
ORDER BY line`

// EachFailed calls fn for each failed message of run, in source order. Rows
// are streamed from the database, so a run with millions of failures is
// listed in constant memory; fn's error stops the listing and is returned.
// fn must not keep m: it is reused for the next row. A run the database does not have gives ErrNoRun.
func EachFailed(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *FailedMessage) error) error {
	if err := checkRun(ctx, pool, run); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, selectFailed, run)
	if err != nil {
		return fmt.Errorf("failed messages of %s: %w", run, err)
	}
	defer rows.Close()
	var m FailedMessage
	for rows.Next() {
		if err := rows.Scan(&m.MsgID, &m.ConversationID, &m.Line, &m.Attempts, &m.LastError); err != nil {
			return fmt.Errorf("failed messages of %s: %w", run, err)
		}
		if err := fn(&m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("failed messages of %s: %w", run, err)
	}
	return nil
}

// EachReject calls fn for each rejected record of run, in source order,
// streaming like EachFailed (r is reused too). A run the database does not have gives ErrNoRun.
func EachReject(ctx context.Context, pool *pgxpool.Pool, run string, fn func(r *Reject) error) error {
	if err := checkRun(ctx, pool, run); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, selectRejects, run)
	if err != nil {
		return fmt.Errorf("rejects of %s: %w", run, err)
	}
	defer rows.Close()
	var r Reject
	for rows.Next() {
		if err := rows.Scan(&r.Line, &r.Field, &r.Reason, &r.Raw); err != nil {
			return fmt.Errorf("rejects of %s: %w", run, err)
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rejects of %s: %w", run, err)
	}
	return nil
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

// EachSent calls fn for each sent message of run, conversation by
// conversation in the order they were sent, streaming like EachFailed (m
// is reused). A run the database does not have gives ErrNoRun.
func EachSent(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *SentMessage) error) error {
	if err := checkRun(ctx, pool, run); err != nil {
		return err
	}
	rows, err := pool.Query(ctx, selectSent, run)
	if err != nil {
		return fmt.Errorf("sent messages of %s: %w", run, err)
	}
	defer rows.Close()
	var m SentMessage
	var msec int64
	for rows.Next() {
		if err := rows.Scan(&m.MsgID, &m.ConversationID, &m.KommoMsgID, &m.KommoChatID, &msec, &m.SentAt, &m.Silent, &m.Reconciled); err != nil {
			return fmt.Errorf("sent messages of %s: %w", run, err)
		}
		m.MessageTime = time.UnixMilli(msec).UTC()
		m.SentAt = m.SentAt.UTC()
		if err := fn(&m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sent messages of %s: %w", run, err)
	}
	return nil
}

func checkRun(ctx context.Context, pool *pgxpool.Pool, run string) error {
	rows, err := pool.Query(ctx, selectRunExists, run)
	if err != nil {
		return fmt.Errorf("run %s: %w", run, err)
	}
	found := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("run %s: %w", run, err)
	}
	if !found {
		return fmt.Errorf("%w %q", ErrNoRun, run)
	}
	return nil
}
