package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// claimConversation leases one conversation nobody works: a parked one whose
// time has come first (its in-doubt message has waited out its window), then
// the largest, so one long chat does not finish last alone. Each candidate
// comes from an index in its order (parked ones from the small partial
// index on not_before), and the row is chosen once, in a materialized CTE:
// with UPDATE ... FROM (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED), some
// plans (generic ones among them) run the subquery again for each row of
// the outer scan and lease every conversation of the run at once. The leases
// of dead processes are freed by the heartbeat's reaper; an expired lease is
// free too.
const claimConversation = `
WITH pick AS MATERIALIZED (
    SELECT COALESCE(
        (SELECT conversation_id FROM kommo_import_conversations
         WHERE run_name = $1 AND NOT done AND NOT held AND not_before IS NOT NULL AND not_before <= now()
           AND (lease_owner IS NULL OR lease_until < now())
         ORDER BY not_before
         LIMIT 1
         FOR UPDATE SKIP LOCKED),
        (SELECT conversation_id FROM kommo_import_conversations
         WHERE run_name = $1 AND NOT done AND NOT held AND not_before IS NULL
           AND (lease_owner IS NULL OR lease_until < now())
         ORDER BY messages DESC, conversation_id
         LIMIT 1
         FOR UPDATE SKIP LOCKED)) AS conversation_id
)
UPDATE kommo_import_conversations c
SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), not_before = NULL,
    lease_epoch = c.lease_epoch + 1,
    -- An expired lease was not given back: its owner may still have a
    -- request on the way until its lease's end plus the request timeout.
    fence_until = CASE WHEN c.lease_owner IS NOT NULL
                       THEN GREATEST(c.fence_until, c.lease_until + make_interval(secs => $5))
                       ELSE c.fence_until END
FROM pick
WHERE c.run_name = $1 AND c.conversation_id = pick.conversation_id
RETURNING c.conversation_id, c.failures,
    COALESCE((SELECT chat_id FROM kommo_import_chats WHERE scope_id = $4 AND conversation_id = c.conversation_id), ''),
    c.lease_epoch,
    COALESCE(extract(epoch FROM c.fence_until - now()), -1e9)::float8,
    CASE WHEN $6 = 'none' THEN '' ELSE COALESCE((` + loudMsgID + `), '') END`

// Claimed is a conversation a claim leased.
type Claimed struct {
	ID       string
	Failures int    // failed attempts in a row at its next message
	ChatID   string // Kommo's, once known
	Epoch    int64  // the lease's epoch: the worker's writes name it
	// FenceLeft is how long an earlier owner's request may still arrive
	// (negative: it cannot any more).
	FenceLeft time.Duration
	// Loud is the msgid that goes out loud under the run's notify rule
	// ("" for none), decided at the claim over everything the scope holds.
	Loud string
}

// ClaimParams says who claims, for how long.
type ClaimParams struct {
	Run, Scope, Owner string
	Lease             time.Duration
	// RequestTimeout bounds how long a request of an owner whose lease
	// expired may still travel.
	RequestTimeout time.Duration
	Notify         string // the run's notify mode, for Claimed.Loud
}

// ClaimConversation leases at most one conversation to p.Owner. It returns
// every row the statement leased: more than one would be the stall the
// statement was written against, and the caller refuses to go on.
func (q *Queries) ClaimConversation(ctx context.Context, p ClaimParams) ([]Claimed, error) {
	rows, err := q.db.Query(ctx, claimConversation, p.Run, p.Owner, p.Lease.Seconds(), p.Scope, p.RequestTimeout.Seconds(), p.Notify)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claimed, error) {
		var c Claimed
		var fence float64
		err := r.Scan(&c.ID, &c.Failures, &c.ChatID, &c.Epoch, &fence, &c.Loud)
		c.FenceLeft = Seconds(fence)
		return c, err
	})
}

// Idle says why nothing could be claimed.
type Idle struct {
	Left      int64         // conversations not done
	Leased    int64         // of them, held under a live lease
	Owner     string        // one process holding some ("" for none)
	LeaseLeft time.Duration // the longest lease left
	Parked    int64         // of them, parked for later
	ParkLeft  time.Duration // until the first parked one comes free
}

// whyIdle describes the conversations left when none can be claimed.
const whyIdle = `
SELECT count(*),
       count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_until >= now()),
       COALESCE(min(split_part(lease_owner, '#', 1)) FILTER (WHERE lease_owner IS NOT NULL AND lease_until >= now()), ''),
       COALESCE(extract(epoch FROM max(lease_until) FILTER (WHERE lease_owner IS NOT NULL AND lease_until >= now()) - now()), 0)::float8,
       count(*) FILTER (WHERE not_before > now()),
       COALESCE(extract(epoch FROM min(not_before) FILTER (WHERE not_before > now()) - now()), 0)::float8
FROM kommo_import_conversations WHERE run_name = $1 AND NOT done AND NOT held`

// WhyIdle counts the run's conversations left and why none is claimable.
func (q *Queries) WhyIdle(ctx context.Context, run string) (Idle, error) {
	var w Idle
	var leaseLeft, parkLeft float64
	err := q.db.QueryRow(ctx, whyIdle, run).Scan(&w.Left, &w.Leased, &w.Owner, &leaseLeft, &w.Parked, &parkLeft)
	w.LeaseLeft, w.ParkLeft = Seconds(leaseLeft), Seconds(parkLeft)
	return w, err
}

// Pending is an unsent message of a conversation.
type Pending struct {
	MsgID   string
	Seq     int64
	Msec    int64
	Payload []byte
	State   State
	Silent  bool
	Age     time.Duration // since the last attempt
	// Ended: this process ended the last attempt itself (its connection
	// closed), so Age counts from the end; set by the importer.
	Ended bool
}

const selectPending = `
SELECT msgid, seq, msec_timestamp, payload, state, COALESCE(silent, true),
       COALESCE(extract(epoch FROM now() - last_attempt_at), 1e9)::float8
FROM kommo_import_messages
WHERE run_name = $1 AND conversation_id = $2 AND state IN ('pending', 'sending')
  AND (msec_timestamp, seq) > ($3, $4)
ORDER BY msec_timestamp, seq
LIMIT 200`

// PendingPage reads the next page (at most 200) of the conversation's
// unsent messages after (afterMsec, afterSeq), in order.
func (q *Queries) PendingPage(ctx context.Context, run, conv string, afterMsec, afterSeq int64) ([]Pending, error) {
	rows, err := q.db.Query(ctx, selectPending, run, conv, afterMsec, afterSeq)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Pending, error) {
		var m Pending
		var age float64
		err := r.Scan(&m.MsgID, &m.Seq, &m.Msec, &m.Payload, &m.State, &m.Silent, &age)
		m.Age = Seconds(age)
		return m, err
	})
}

// Lease names a conversation, the worker that holds it and the epoch of
// its claim: every write of the worker checks both, so a worker whose
// lease was taken (a frozen process that comes back) changes nothing.
type Lease struct {
	Run, Scope, Conversation, Owner string
	Epoch                           int64
}

// leaseHeld is the condition, on the conversations table, that l still
// holds its lease ($1 run, $2 conversation, $3 owner, $4 epoch).
const leaseHeld = `run_name = $1 AND conversation_id = $2 AND lease_owner = $3 AND lease_epoch = $4`

// markSending checkpoints the start of an attempt and renews the lease in
// one statement: no lease, no send. That is what keeps two workers (in any
// processes) off one conversation even if a lease was freed unnoticed; the
// run check keeps a message another run took over off this one. attempts
// counts the attempt once however often the statement runs ($8: the
// attempt's id).
const markSending = `
WITH lease AS (
    UPDATE kommo_import_conversations SET lease_until = now() + make_interval(secs => $6)
    WHERE ` + leaseHeld + ` AND lease_until > now()
    RETURNING 1
), marked AS (
    UPDATE kommo_import_messages
    SET state = 'sending', attempts = attempts + (attempt_id IS DISTINCT FROM $8)::int, attempt_id = $8,
        last_attempt_at = now()
    WHERE scope_id = $5 AND msgid = $7 AND run_name = $1 AND state IN ('pending', 'sending')
      AND EXISTS (SELECT 1 FROM lease)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM marked)`

// MarkSending records that attempt number attempt at msgid starts and
// renews l's lease for lease. leased is false when the conversation is not
// l's any more; marked is false when the message is not to be sent any
// more (another process recorded it sent).
func (q *Queries) MarkSending(ctx context.Context, l Lease, lease time.Duration, msgid string, attempt int64) (leased, marked bool, err error) {
	err = q.db.QueryRow(ctx, markSending, l.Run, l.Conversation, l.Owner, l.Epoch, l.Scope, lease.Seconds(), msgid, attempt).Scan(&leased, &marked)
	return leased, marked, err
}

// Sent is what Kommo said of a delivered message.
type Sent struct {
	MsgID, KommoMsgID, ChatID, SenderID string
	// Reconciled: found in the chat's history after an in-doubt attempt.
	Reconciled bool
	// NewChat: the conversation's chat id was not recorded yet.
	NewChat bool
	// QuoteDropped: sent without a quote the export does not hold.
	QuoteDropped bool
}

const markSent = `
WITH sent AS (
    UPDATE kommo_import_messages
    SET state = 'sent', kommo_msgid = $4, kommo_chat_id = NULLIF($5, ''), kommo_sender_id = NULLIF($6, ''),
        reconciled = $7, last_error = NULL, sent_at = now()
    WHERE scope_id = $1 AND msgid = $2 AND run_name = $8 AND state <> 'sent'
    RETURNING 1
), chat AS (
    INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id)
    SELECT $1, $3, $5 WHERE $9 AND $5 <> ''
    ON CONFLICT DO NOTHING
), quote AS (
    UPDATE kommo_import_runs SET quotes_dropped = quotes_dropped + 1
    WHERE name = $8 AND $10 AND EXISTS (SELECT 1 FROM sent)
)
SELECT count(*) FROM sent`

// MarkSent records Kommo's ids for a delivered message, the conversation's
// chat id the first time, and a dropped quote, in one statement. It changes
// nothing for a message already recorded sent, so running it twice counts
// nothing twice.
func (q *Queries) MarkSent(ctx context.Context, run, scope, conv string, s Sent) error {
	var n int64
	return q.db.QueryRow(ctx, markSent, scope, s.MsgID, conv, s.KommoMsgID, s.ChatID, s.SenderID, s.Reconciled, run, s.NewChat, s.QuoteDropped).Scan(&n)
}

const markFailed = `
UPDATE kommo_import_messages SET state = 'failed', last_error = $7
WHERE scope_id = $5 AND msgid = $6 AND run_name = $1 AND state <> 'sent'
  AND EXISTS (SELECT 1 FROM kommo_import_conversations WHERE ` + leaseHeld + `)`

// MarkFailed records that the API refused msgid for good, with its answer,
// while l holds its conversation.
func (q *Queries) MarkFailed(ctx context.Context, l Lease, msgid, reason string) error {
	_, err := q.db.Exec(ctx, markFailed, l.Run, l.Conversation, l.Owner, l.Epoch, l.Scope, msgid, reason)
	return err
}

const markPending = `
UPDATE kommo_import_messages SET state = 'pending', attempts = GREATEST(attempts - $7, 0)
WHERE scope_id = $5 AND msgid = $6 AND run_name = $1 AND state = 'sending'
  AND EXISTS (SELECT 1 FROM kommo_import_conversations WHERE ` + leaseHeld + `)`

// MarkPending undoes MarkSending, while l holds its conversation, for a
// request that was refused unprocessed (a 429, a refused scope: made) or
// never made (its slot was given up: the attempt does not count).
func (q *Queries) MarkPending(ctx context.Context, l Lease, msgid string, made bool) error {
	uncount := 1
	if made {
		uncount = 0
	}
	_, err := q.db.Exec(ctx, markPending, l.Run, l.Conversation, l.Owner, l.Epoch, l.Scope, msgid, uncount)
	return err
}

const park = `
WITH parked AS (
    UPDATE kommo_import_conversations
    SET lease_owner = NULL, lease_until = NULL, not_before = now() + make_interval(secs => $5), failures = $6
    WHERE ` + leaseHeld + `
    RETURNING 1
)
UPDATE kommo_import_messages SET last_attempt_at = now()
WHERE run_name = $1 AND msgid = $7 AND state = 'sending' AND EXISTS (SELECT 1 FROM parked)`

// Park gives l's conversation back, not to be claimed for d, with its
// count of failures in a row. ended, when not "", is an in-doubt message
// whose attempt has just ended (its connection closed): its reconcile
// window counts from now, not from the attempt's start.
func (q *Queries) Park(ctx context.Context, l Lease, d time.Duration, failures int, ended string) error {
	_, err := q.db.Exec(ctx, park, l.Run, l.Conversation, l.Owner, l.Epoch, max(d, 0).Seconds(), failures, ended)
	return err
}

// release gives the lease back, marking the conversation done when nothing
// of it is left to send (failed messages do not hold it open), or held
// behind a failed message.
const release = `
UPDATE kommo_import_conversations c
SET lease_owner = NULL, lease_until = NULL, failures = $5, held = $6,
    done = NOT $6 AND NOT EXISTS (SELECT 1 FROM kommo_import_messages m
                                 WHERE m.run_name = c.run_name AND m.conversation_id = c.conversation_id
                                   AND m.state IN ('pending', 'sending'))
WHERE ` + leaseHeld

// Release gives l's conversation back: done when nothing of it is left, or
// held (a failed message holds the messages after it until retry).
func (q *Queries) Release(ctx context.Context, l Lease, failures int, held bool) error {
	_, err := q.db.Exec(ctx, release, l.Run, l.Conversation, l.Owner, l.Epoch, failures, held)
	return err
}

const saveChat = `INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`

// SaveChat records the conversation's Kommo chat id (from create-chat).
func (q *Queries) SaveChat(ctx context.Context, scope, conv, chatID string) error {
	_, err := q.db.Exec(ctx, saveChat, scope, conv, chatID)
	return err
}

// loudMsgID is the message of the conversation c that goes out loud: the
// newest one the scope holds (for newest-incoming, the newest incoming
// one), from any run. Decided again whenever a conversation is claimed, so
// an in-doubt message taken over by a later run that brought newer messages
// goes out silent when it is sent again.
const loudMsgID = `
SELECT l.msgid FROM kommo_import_messages l
WHERE l.scope_id = $4 AND l.conversation_id = c.conversation_id AND ($6 <> 'newest-incoming' OR NOT l.outgoing)
ORDER BY l.msec_timestamp DESC, l.seq DESC
LIMIT 1`

// Quoted is a message a reply or forward names, as the scope holds it.
type Quoted struct {
	MsgID   string
	State   State
	KommoID string
	Payload []byte
}

const selectQuoted = `
SELECT msgid, state, COALESCE(kommo_msgid, ''), payload
FROM kommo_import_messages WHERE scope_id = $1 AND msgid = ANY($2)`

// QuotedMessages reads the messages of msgids that the scope holds.
func (q *Queries) QuotedMessages(ctx context.Context, scope string, msgids []string) ([]Quoted, error) {
	rows, err := q.db.Query(ctx, selectQuoted, scope, msgids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Quoted])
}

// Seconds is s seconds as a Duration, saturating.
func Seconds(s float64) time.Duration {
	const maxSeconds = float64(1<<63-1) / 1e9
	if s > maxSeconds {
		return 1<<63 - 1
	}
	return time.Duration(s * float64(time.Second))
}
