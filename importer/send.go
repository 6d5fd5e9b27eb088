package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/kommo-import/kommo-import/chatsapi"
)

// claimConversation leases one conversation nobody works: a parked one whose
// time has come first (its in-doubt message has waited out its window), then
// the largest, so one long chat does not finish last alone. The row is
// chosen once, in a materialized CTE: with UPDATE ... FROM (SELECT ... LIMIT 1
// FOR UPDATE SKIP LOCKED), some plans (generic ones among them) run the
// subquery again for each row of the outer scan and lease every
// conversation of the run at once. The leases of dead processes are freed
// by the heartbeat's reaper; an expired lease is free too.
const claimConversation = `
WITH pick AS MATERIALIZED (
    SELECT conversation_id FROM kommo_import_conversations
    WHERE run_name = $1 AND NOT done
      AND (lease_owner IS NULL OR lease_until < now())
      AND (not_before IS NULL OR not_before <= now())
    ORDER BY not_before IS NULL, messages DESC, conversation_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE kommo_import_conversations c
SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), not_before = NULL
FROM pick
WHERE c.run_name = $1 AND c.conversation_id = pick.conversation_id
RETURNING c.conversation_id,
    (SELECT chat_id FROM kommo_import_chats WHERE scope_id = $4 AND conversation_id = c.conversation_id)`

const countUndone = `SELECT count(*) FROM kommo_import_conversations WHERE run_name = $1 AND NOT done`

// releaseConversation gives the lease back, marking the conversation done
// when nothing of it is left to send (failed messages do not hold it open).
const releaseConversation = `
UPDATE kommo_import_conversations c
SET lease_owner = NULL, lease_until = NULL,
    done = NOT EXISTS (SELECT 1 FROM kommo_import_messages m
                       WHERE m.run_name = c.run_name AND m.conversation_id = c.conversation_id
                         AND m.state IN ('pending', 'sending'))
WHERE run_name = $1 AND conversation_id = $2 AND lease_owner = $3`

const selectPending = `
SELECT msgid, seq, msec_timestamp, payload, state, COALESCE(silent, true),
       COALESCE(extract(epoch FROM now() - last_attempt_at), 1e9)::float8
FROM kommo_import_messages
WHERE run_name = $1 AND conversation_id = $2 AND state IN ('pending', 'sending')
  AND (msec_timestamp, seq) > ($3, $4)
ORDER BY msec_timestamp, seq
LIMIT 200`

// markSending checkpoints the start of an attempt and renews the lease in
// one statement: no lease, no send. That is what keeps two workers (in any
// processes) off one conversation even if a lease ran out unnoticed.
const markSending = `
WITH lease AS (
    UPDATE kommo_import_conversations SET lease_until = now() + make_interval(secs => $5)
    WHERE run_name = $1 AND conversation_id = $2 AND lease_owner = $3 AND lease_until > now()
    RETURNING 1
)
UPDATE kommo_import_messages
SET state = 'sending', attempts = attempts + 1, last_attempt_at = now()
WHERE scope_id = $4 AND msgid = $6 AND state IN ('pending', 'sending') AND EXISTS (SELECT 1 FROM lease)`

const markSent = `
WITH chat AS (
    INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id)
    SELECT $1, $7, $4 WHERE $4 <> '' AND $8
    ON CONFLICT DO NOTHING
)
UPDATE kommo_import_messages
SET state = 'sent', kommo_msgid = $3, kommo_chat_id = NULLIF($4, ''), kommo_sender_id = NULLIF($5, ''),
    reconciled = $6, last_error = NULL, sent_at = now()
WHERE scope_id = $1 AND msgid = $2`

const markFailed = `UPDATE kommo_import_messages SET state = 'failed', last_error = $3 WHERE scope_id = $1 AND msgid = $2`

const markPending = `UPDATE kommo_import_messages SET state = 'pending' WHERE scope_id = $1 AND msgid = $2 AND state = 'sending'`

const saveChat = `INSERT INTO kommo_import_chats (scope_id, conversation_id, chat_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`

// errLostLease means another worker may own the conversation now: stop
// working it without touching anything.
var errLostLease = errors.New("conversation lease lost")

// historyPage is the largest page the history endpoint serves.
const historyPage = 50

type pendingMessage struct {
	msgid   string
	seq     int64
	msec    int64
	payload []byte
	state   string
	silent  bool
	age     time.Duration // since the last attempt
}

type conversation struct {
	id     string
	chatID string // Kommo's, once known
	owner  string // the lease owner: this process and worker, "process#worker"
}

// send runs the worker pool until every conversation of the run is done or
// the run must stop.
func (im *Importer) send(ctx context.Context, soft <-chan struct{}) error {
	im.stats.phase.Store(PhaseSending)
	var n int
	err := im.withDB(ctx, "heartbeat", func(ctx context.Context) (err error) {
		n, err = im.beat(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if n > 1 {
		// The others learn of this process at their next beat; until then
		// they still use the larger share. Wait for them to slow down.
		im.log.Info("joining other processes on this run", "processes", n)
		if err := sleepCtx(ctx, im.cfg.Heartbeat*3/2); err != nil {
			return err
		}
	}
	if err := im.withDB(ctx, "progress", im.loadProgressBase); err != nil {
		return err
	}
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHB()
	go im.heartbeatLoop(hbCtx)

	// halt is closed by the first worker that must stop the run: the others
	// finish their request in flight, as on a soft stop.
	halt := make(chan struct{})
	var haltOnce sync.Once
	stop := func() { haltOnce.Do(func() { close(halt) }) }
	go func() {
		select {
		case <-soft:
			stop()
		case <-hbCtx.Done():
		}
	}()

	var g errgroup.Group
	for i := range im.cfg.Workers {
		// Leases are held per worker, not per process: the markSending lease
		// check then keeps even two workers of one process off one conversation.
		owner := im.procID + "#" + strconv.Itoa(i)
		g.Go(func() error {
			err := im.worker(ctx, owner, halt)
			if err != nil {
				stop()
			}
			return err
		})
	}
	err = g.Wait()
	if err == nil && stopped(soft) {
		err = fmt.Errorf("%w by a signal", ErrInterrupted)
	}
	return err
}

func (im *Importer) worker(ctx context.Context, owner string, halt <-chan struct{}) error {
	for {
		if stopped(halt) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		conv, ok, err := im.claim(ctx, owner)
		if err != nil {
			return err
		}
		if !ok {
			var left int64
			err := im.withDB(ctx, "count", func(ctx context.Context) error {
				return im.pool.QueryRow(ctx, countUndone, im.cfg.Run).Scan(&left)
			})
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			if left == 0 {
				return nil
			}
			// Others hold the rest; wait in case a lease of a dead process runs out.
			select {
			case <-halt:
			case <-ctx.Done():
			case <-time.After(min(im.cfg.Heartbeat, time.Second)):
			}
			continue
		}
		err = im.work(ctx, conv, halt)
		rerr := im.checkpointAny(ctx, releaseConversation, im.cfg.Run, conv.id, owner)
		im.setActive(owner, "")
		if errors.Is(err, errLostLease) {
			im.log.Warn("lost the lease of a conversation; leaving it to its new owner", "conversation_id", conv.id)
			err = nil
		}
		if err != nil {
			return err
		}
		if rerr != nil {
			return fmt.Errorf("release conversation %s: %w", conv.id, rerr)
		}
	}
}

// claim leases at most one conversation to owner. An UPDATE that returns
// more than one row would be the stall this query was rewritten against:
// it fails loudly instead of working one and holding the rest.
func (im *Importer) claim(ctx context.Context, owner string) (conversation, bool, error) {
	var claimed []conversation
	err := im.withDB(ctx, "claim", func(ctx context.Context) error {
		rows, err := im.pool.Query(ctx, claimConversation, im.cfg.Run, owner, im.cfg.Lease.Seconds(), im.cfg.ScopeID)
		if err != nil {
			return err
		}
		claimed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (conversation, error) {
			c := conversation{owner: owner}
			var chat *string
			err := r.Scan(&c.id, &chat)
			if chat != nil {
				c.chatID = *chat
			}
			return c, err
		})
		return err
	})
	switch {
	case err != nil:
		return conversation{}, false, fmt.Errorf("claim conversation: %w", err)
	case len(claimed) == 0:
		return conversation{}, false, nil
	case len(claimed) > 1:
		return conversation{}, false, fmt.Errorf("claim conversation: one claim leased %d conversations; refusing to go on", len(claimed))
	}
	im.setActive(owner, claimed[0].id)
	return claimed[0], true, nil
}

// work sends the conversation's pending messages in order, a page at a time
// so that a conversation of any length is sent in constant memory.
func (im *Importer) work(ctx context.Context, conv conversation, halt <-chan struct{}) error {
	afterMsec, afterSeq := int64(-1<<63), int64(-1<<63)
	for {
		var page []pendingMessage
		err := im.withDB(ctx, "load conversation", func(ctx context.Context) error {
			rows, err := im.pool.Query(ctx, selectPending, im.cfg.Run, conv.id, afterMsec, afterSeq)
			if err != nil {
				return err
			}
			page, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingMessage, error) {
				var m pendingMessage
				var age float64
				err := r.Scan(&m.msgid, &m.seq, &m.msec, &m.payload, &m.state, &m.silent, &age)
				m.age = time.Duration(age * float64(time.Second))
				return m, err
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("load conversation %s: %w", conv.id, err)
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			if stopped(halt) {
				return nil
			}
			if err := im.deliver(ctx, &conv, &page[i], halt); err != nil {
				return err
			}
		}
		last := page[len(page)-1]
		afterMsec, afterSeq = last.msec, last.seq
	}
}

// deliver gets one message to the API exactly once.
func (im *Importer) deliver(ctx context.Context, conv *conversation, m *pendingMessage, halt <-chan struct{}) error {
	var p chatsapi.Payload
	if err := json.Unmarshal(m.payload, &p); err != nil {
		return fmt.Errorf("message %s: stored payload: %w", m.msgid, err)
	}
	p.Silent = m.silent
	if m.state == "sending" {
		// An earlier attempt may have landed: look before sending again.
		found, err := im.reconcile(ctx, conv, m, &p, m.age)
		if err != nil || found {
			return err
		}
	}
	failures := 0
	for {
		if err := im.checkpoint(ctx, markSending, im.cfg.Run, conv.id, conv.owner, im.cfg.ScopeID, im.cfg.Lease.Seconds(), m.msgid); err != nil {
			return err
		}
		res, err := im.api.SendMessage(ctx, &p)
		if err == nil {
			im.stats.sent.Add(1)
			known := conv.chatID != ""
			if conv.chatID == "" {
				conv.chatID = res.ConversationID
			}
			return im.checkpointAny(ctx, markSent, im.cfg.ScopeID, m.msgid, res.MsgID, res.ConversationID, res.SenderID, false, conv.id, !known)
		}
		if ctx.Err() != nil {
			// Hard stop: the message stays "sending", in doubt, for the next run.
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		}
		apiErr, _ := chatsapi.AsError(err)
		if apiErr == nil {
			apiErr = &chatsapi.Error{Kind: chatsapi.KindRetryable, InDoubt: true, Err: err}
		}
		if scopeWide(apiErr) {
			// The request was refused, not processed.
			if err := im.checkpointAny(ctx, markPending, im.cfg.ScopeID, m.msgid); err != nil {
				return err
			}
			return stopError(apiErr)
		}
		switch apiErr.Kind {
		case chatsapi.KindPermanent:
			im.stats.failed.Add(1)
			im.log.Warn("message refused by the API", "msgid", m.msgid, "conversation_id", conv.id, "err", apiErr)
			return im.checkpointAny(ctx, markFailed, im.cfg.ScopeID, m.msgid, cleanText(apiErr.Error()))
		case chatsapi.KindRateLimited:
			im.pause(ctx, im.pauseFor(apiErr))
			continue
		}
		// Retryable.
		failures++
		im.stats.retries.Add(1)
		if failures >= im.cfg.MaxAttempts {
			if !apiErr.InDoubt {
				_ = im.checkpointAny(ctx, markPending, im.cfg.ScopeID, m.msgid)
			}
			return fmt.Errorf("%w: the API keeps failing (%d attempts at message %s): %v", ErrInterrupted, failures, m.msgid, apiErr)
		}
		im.log.Info("retrying", "msgid", m.msgid, "attempt", failures+1, "in_doubt", apiErr.InDoubt, "err", apiErr)
		if err := im.backoff(ctx, failures, halt); err != nil {
			return err
		}
		if stopped(halt) {
			if !apiErr.InDoubt {
				return im.checkpointAny(ctx, markPending, im.cfg.ScopeID, m.msgid)
			}
			return nil // stays "sending": reconciled on resume
		}
		if apiErr.InDoubt {
			found, err := im.reconcile(ctx, conv, m, &p, 0)
			if err != nil || found {
				return err
			}
		}
	}
}

// reconcile looks for an in-doubt message in its chat's history (its msgid
// comes back as client_id). It marks the message sent when found. The API
// processes messages asynchronously, so it first waits until ReconcileWait
// has passed since the attempt.
func (im *Importer) reconcile(ctx context.Context, conv *conversation, m *pendingMessage, p *chatsapi.Payload, age time.Duration) (bool, error) {
	im.stats.reconciled.Add(1)
	if wait := im.cfg.ReconcileWait - age; wait > 0 {
		if err := sleepCtx(ctx, wait); err != nil {
			return false, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
	}
	if conv.chatID == "" {
		var chat *chatsapi.Chat
		err := im.call(ctx, func(ctx context.Context) (err error) {
			chat, err = im.api.CreateChat(ctx, conv.id, chatUser(p))
			return err
		})
		if err != nil {
			return false, err
		}
		conv.chatID = chat.ID
		if err := im.checkpointAny(ctx, saveChat, im.cfg.ScopeID, conv.id, chat.ID); err != nil {
			return false, err
		}
	}
	for offset := 0; ; offset += historyPage {
		var page []chatsapi.HistoryMessage
		err := im.call(ctx, func(ctx context.Context) (err error) {
			page, err = im.api.History(ctx, conv.chatID, offset, historyPage)
			return err
		})
		if err != nil {
			return false, err
		}
		for _, h := range page {
			if h.Message.ClientID == m.msgid {
				im.stats.reconciledFound.Add(1)
				im.log.Info("in-doubt message found in the chat's history: not sending it again", "msgid", m.msgid, "conversation_id", conv.id)
				sender := ""
				if h.Sender != nil {
					sender = h.Sender.ID
				}
				return true, im.checkpointAny(ctx, markSent, im.cfg.ScopeID, m.msgid, h.Message.ID, conv.chatID, sender, true, conv.id, false)
			}
		}
		// Newest first: once a page reaches older messages than ours, ours is not there.
		if len(page) < historyPage || page[len(page)-1].MsecTimestamp < m.msec {
			return false, nil
		}
	}
}

// call runs a look-up (create chat, history), retrying what is retryable.
func (im *Importer) call(ctx context.Context, fn func(context.Context) error) error {
	for failures := 0; ; {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		}
		apiErr, _ := chatsapi.AsError(err)
		if apiErr == nil {
			return err
		}
		if scopeWide(apiErr) {
			return stopError(apiErr)
		}
		switch apiErr.Kind {
		case chatsapi.KindPermanent:
			return fmt.Errorf("%w: %v", ErrInterrupted, apiErr)
		case chatsapi.KindRateLimited:
			im.pause(ctx, im.pauseFor(apiErr))
			continue
		}
		failures++
		im.stats.retries.Add(1)
		if failures >= im.cfg.MaxAttempts {
			return fmt.Errorf("%w: the API keeps failing: %v", ErrInterrupted, apiErr)
		}
		if err := im.backoff(ctx, failures, nil); err != nil {
			return err
		}
	}
}

func (im *Importer) pauseFor(e *chatsapi.Error) time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	return im.cfg.DefaultPause
}

// backoff sleeps before retry number n (1-based): exponential, capped, with
// jitter so that workers hit by one outage do not retry in step.
func (im *Importer) backoff(ctx context.Context, n int, halt <-chan struct{}) error {
	d := im.cfg.BackoffBase << min(n-1, 20)
	if d <= 0 || d > im.cfg.BackoffMax {
		d = im.cfg.BackoffMax
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
	case <-halt:
		return nil
	case <-t.C:
		return nil
	}
}

// scopeWide reports whether an error concerns the whole scope rather than
// one message: failing every message for it would be wrong, stopping is right.
func scopeWide(e *chatsapi.Error) bool {
	return e.Kind == chatsapi.KindBlocked || e.Kind == chatsapi.KindBadSignature ||
		e.ErrorType == chatsapi.ErrorTypeNotRegistered || (e.Status >= 300 && e.Status < 400)
}

// stopError turns an error that concerns the whole scope (a block, a refused
// signature, an unknown scope) into the run's stop reason.
func stopError(e *chatsapi.Error) error {
	switch {
	case e.ErrorType == chatsapi.ErrorTypeNotRegistered || (e.Status >= 300 && e.Status < 400):
		return &StopError{Reason: StopUnknownScope, Err: e}
	case e.Kind == chatsapi.KindBlocked:
		return &StopError{Reason: StopBlocked, Err: e}
	}
	if !e.ServerDate.IsZero() {
		// The response's Date has a resolution of a second and took a
		// moment to arrive: only minutes of difference are skew.
		if skew := time.Since(e.ServerDate); skew > 2*time.Minute || skew < -2*time.Minute {
			return &StopError{Reason: StopClockSkew, Skew: skew, Err: e}
		}
	}
	return &StopError{Reason: StopBadSignature, Err: e}
}

// checkpoint runs a state change that must take effect, detached from the
// run's cancellation and waiting out database outages. Zero rows changed
// means the lease is gone.
func (im *Importer) checkpoint(ctx context.Context, sql string, args ...any) error {
	var rows int64
	err := im.exec(ctx, &rows, sql, args...)
	if err == nil && rows == 0 {
		return errLostLease
	}
	return err
}

// checkpointAny is checkpoint for statements that may legitimately change no row.
func (im *Importer) checkpointAny(ctx context.Context, sql string, args ...any) error {
	return im.exec(ctx, nil, sql, args...)
}

func (im *Importer) exec(ctx context.Context, rows *int64, sql string, args ...any) error {
	err := im.withDB(context.WithoutCancel(ctx), "checkpoint", func(ctx context.Context) error {
		cctx, cancel := checkpointCtx(ctx)
		defer cancel()
		tag, err := im.pool.Exec(cctx, sql, args...)
		if rows != nil {
			*rows = tag.RowsAffected()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// chatUser is the chat's client: the sender of an incoming message, the
// receiver of an outgoing one.
func chatUser(p *chatsapi.Payload) chatsapi.Participant {
	u := p.Sender
	if p.Receiver != nil {
		u = p.Receiver
	}
	if u == nil {
		return chatsapi.Participant{ID: p.ConversationID, Name: p.ConversationID}
	}
	return chatsapi.Participant{ID: u.ID, Name: u.Name, Avatar: u.Avatar, Profile: u.Profile, ProfileLink: u.ProfileLink}
}
