package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The checkpoints of the send path: one small function per statement. Each
// runs under the run's (hard) context with a deadline of its own, waiting out
// database outages; every one is safe to run twice (a statement that
// committed but lost its answer runs again harmlessly). A hard stop cancels
// them: what was not recorded stays in doubt and is reconciled on resume.

const checkpointTimeout = 15 * time.Second

const selectPending = `
SELECT msgid, seq, msec_timestamp, payload, state, COALESCE(silent, true),
       COALESCE(extract(epoch FROM now() - last_attempt_at), 1e9)::float8
FROM kommo_import_messages
WHERE run_name = $1 AND conversation_id = $2 AND state IN ('pending', 'sending')
  AND (msec_timestamp, seq) > ($3, $4)
ORDER BY msec_timestamp, seq
LIMIT 200`

// loadPending reads the next page of the conversation's unsent messages, in order.
func (im *Importer) loadPending(ctx context.Context, conv string, afterMsec, afterSeq int64) ([]pendingMessage, error) {
	var page []pendingMessage
	err := im.withDB(ctx, "load conversation", func(ctx context.Context) error {
		rows, err := im.pool.Query(ctx, selectPending, im.cfg.Run, conv, afterMsec, afterSeq)
		if err != nil {
			return err
		}
		page, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingMessage, error) {
			var m pendingMessage
			var age float64
			err := r.Scan(&m.msgid, &m.seq, &m.msec, &m.payload, &m.state, &m.silent, &age)
			m.age = secs(age)
			return m, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load conversation %s: %w", conv, err)
	}
	return page, nil
}

// markSendingSQL checkpoints the start of an attempt and renews the lease in
// one statement: no lease, no send. That is what keeps two workers (in any
// processes) off one conversation even if a lease was freed unnoticed; the
// run check keeps a message another run took over off this one.
const markSendingSQL = `
WITH lease AS (
    UPDATE kommo_import_conversations SET lease_until = now() + make_interval(secs => $5)
    WHERE run_name = $1 AND conversation_id = $2 AND lease_owner = $3 AND lease_until > now()
    RETURNING 1
)
UPDATE kommo_import_messages
SET state = 'sending', attempts = attempts + 1, last_attempt_at = now()
WHERE scope_id = $4 AND msgid = $6 AND run_name = $1 AND state IN ('pending', 'sending')
  AND EXISTS (SELECT 1 FROM lease)`

// markSending records that an attempt at msgid starts; errLostLease when the
// conversation is not this worker's any more.
func (im *Importer) markSending(ctx context.Context, conv *conversation, msgid string) error {
	n, err := im.exec(ctx, markSendingSQL, im.cfg.Run, conv.id, conv.owner, im.cfg.ScopeID, im.cfg.Lease.Seconds(), msgid)
	if err == nil && n == 0 {
		return errLostLease
	}
	return err
}

const markSentSQL = `
WITH chat AS (
    INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id)
    SELECT $1, $3, $5 WHERE $9
    ON CONFLICT DO NOTHING
)
UPDATE kommo_import_messages
SET state = 'sent', kommo_msgid = $4, kommo_chat_id = NULLIF($5, ''), kommo_sender_id = NULLIF($6, ''),
    reconciled = $7, last_error = NULL, sent_at = now()
WHERE scope_id = $1 AND msgid = $2 AND run_name = $8`

const countQuoteDropped = `UPDATE kommo_import_runs SET quotes_dropped = quotes_dropped + 1 WHERE name = $1`

// markSent records Kommo's ids for a delivered message (reconciled: found in
// the chat's history after an in-doubt attempt; quoteDropped: sent without
// a quote the export does not hold), and the chat id of the conversation
// when it was not known. It runs once per message: positional arguments,
// and the chat row only written the first time.
func (im *Importer) markSent(ctx context.Context, conv *conversation, msgid, kommoMsgID, chatID, senderID string, reconciled, quoteDropped bool) error {
	newChat := conv.chatID == "" && chatID != ""
	if newChat {
		conv.chatID = chatID
	}
	if _, err := im.exec(ctx, markSentSQL, im.cfg.ScopeID, msgid, conv.id, kommoMsgID, chatID, senderID, reconciled, im.cfg.Run, newChat); err != nil {
		return err
	}
	if quoteDropped {
		_, err := im.exec(ctx, countQuoteDropped, im.cfg.Run)
		return err
	}
	return nil
}

const markFailedSQL = `
UPDATE kommo_import_messages SET state = 'failed', last_error = $4
WHERE scope_id = $1 AND msgid = $2 AND run_name = $3`

// markFailed records that the API refused msgid for good, with its answer.
func (im *Importer) markFailed(ctx context.Context, msgid, reason string) error {
	_, err := im.exec(ctx, markFailedSQL, im.cfg.ScopeID, msgid, im.cfg.Run, cleanText(reason))
	return err
}

const markPendingSQL = `
UPDATE kommo_import_messages SET state = 'pending', attempts = GREATEST(attempts - $4, 0)
WHERE scope_id = $1 AND msgid = $2 AND run_name = $3 AND state = 'sending'`

// markPending undoes markSending for a request that was refused unprocessed
// (a 429, a refused scope), or one that was never made (made false: its slot
// was given up, and the attempt does not count).
func (im *Importer) markPending(ctx context.Context, m *pendingMessage, made bool) error {
	uncount := 1
	if made {
		uncount = 0
	}
	_, err := im.exec(ctx, markPendingSQL, im.cfg.ScopeID, m.msgid, im.cfg.Run, uncount)
	m.state = StatePending
	return err
}

const parkSQL = `
UPDATE kommo_import_conversations
SET lease_owner = NULL, lease_until = NULL, not_before = now() + make_interval(secs => $4), failures = $5
WHERE run_name = $1 AND conversation_id = $2 AND lease_owner = $3`

// park gives the conversation back, not to be claimed for d: its next
// message waits for a retry, or out the reconcile window. Its later
// messages wait with it, so the order holds.
func (im *Importer) park(ctx context.Context, conv *conversation, d time.Duration) error {
	_, err := im.exec(ctx, parkSQL, im.cfg.Run, conv.id, conv.owner, max(d, 0).Seconds(), conv.failures)
	return err
}

// releaseSQL gives the lease back, marking the conversation done when
// nothing of it is left to send (failed messages do not hold it open).
const releaseSQL = `
UPDATE kommo_import_conversations c
SET lease_owner = NULL, lease_until = NULL, failures = $4,
    done = NOT EXISTS (SELECT 1 FROM kommo_import_messages m
                       WHERE m.run_name = c.run_name AND m.conversation_id = c.conversation_id
                         AND m.state IN ('pending', 'sending'))
WHERE run_name = $1 AND conversation_id = $2 AND lease_owner = $3`

func (im *Importer) release(ctx context.Context, conv *conversation) error {
	_, err := im.exec(ctx, releaseSQL, im.cfg.Run, conv.id, conv.owner, conv.failures)
	return err
}

const saveChatSQL = `INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`

// saveChat records the conversation's Kommo chat id (from create-chat).
func (im *Importer) saveChat(ctx context.Context, conv *conversation) error {
	_, err := im.exec(ctx, saveChatSQL, im.cfg.ScopeID, conv.id, conv.chatID)
	return err
}

// exec runs one checkpoint statement and returns the rows it changed.
func (im *Importer) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var rows int64
	err := im.withDB(ctx, "checkpoint", func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
		defer cancel()
		tag, err := im.pool.Exec(cctx, sql, args...)
		rows = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return rows, nil
}
