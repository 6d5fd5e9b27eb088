package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// The checkpoints of the send path, each one statement of the store, run
// under the run's (hard) context with a deadline of its own, waiting out
// database outages (withDB). A statement that committed but lost its answer
// runs again: the store's statements are written so that running one twice
// records the same (MarkSent changes nothing for a message already sent). A
// hard stop cancels them: what was not recorded stays in doubt and is
// reconciled on resume.

const checkpointTimeout = 15 * time.Second

// pendingMessage is an unsent message of the conversation being worked.
type pendingMessage = store.Pending

// checkpoint runs one checkpoint statement.
func (im *Importer) checkpoint(ctx context.Context, fn func(ctx context.Context, q *store.Queries) error) error {
	err := im.withDB(ctx, "checkpoint", func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
		defer cancel()
		return fn(cctx, im.q)
	})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

func (im *Importer) lease(conv *conversation) store.Lease {
	return store.Lease{Run: im.cfg.Run, Scope: im.cfg.ScopeID, Conversation: conv.id, Owner: conv.owner, Epoch: conv.epoch}
}

// errSettled: the message is not to be sent any more (another process
// recorded it sent while this one waited).
var errSettled = errors.New("message settled elsewhere")

// loadPending reads the next page of the conversation's unsent messages, in order.
func (im *Importer) loadPending(ctx context.Context, conv string, afterMsec, afterSeq int64) ([]pendingMessage, error) {
	var page []pendingMessage
	err := im.withDB(ctx, "load conversation", func(ctx context.Context) (err error) {
		page, err = im.q.PendingPage(ctx, im.cfg.Run, conv, afterMsec, afterSeq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load conversation %s: %w", conv, err)
	}
	return page, nil
}

// markSending records that an attempt at msgid starts, renewing the lease
// in the same statement; errLostLease when the conversation is not this
// worker's any more, marked false when the message is no longer to be sent.
func (im *Importer) markSending(ctx context.Context, conv *conversation, msgid string) (marked bool, err error) {
	var leased bool
	attempt := im.attempts.Add(1)
	err = im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) (err error) {
		leased, marked, err = q.MarkSending(ctx, im.lease(conv), im.cfg.Lease, msgid, attempt)
		return err
	})
	if err == nil && !leased {
		return false, errLostLease
	}
	return marked, err
}

// markSent records Kommo's ids for a delivered message, and the
// conversation's chat id when it was not known.
func (im *Importer) markSent(ctx context.Context, conv *conversation, s store.Sent) error {
	s.NewChat = conv.chatID == "" && s.ChatID != ""
	if s.NewChat {
		conv.chatID = s.ChatID
	}
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.MarkSent(ctx, im.cfg.Run, im.cfg.ScopeID, conv.id, s)
	})
}

// markFailed records that the API refused msgid for good, with its answer.
func (im *Importer) markFailed(ctx context.Context, conv *conversation, msgid, reason string) error {
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.MarkFailed(ctx, im.lease(conv), msgid, cleanText(reason))
	})
}

// markPending undoes markSending for a request that was refused unprocessed
// (a 429, a refused scope), or one that was never made (made false: its slot
// was given up, and the attempt does not count).
func (im *Importer) markPending(ctx context.Context, conv *conversation, m *pendingMessage, made bool) error {
	m.State = StatePending
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.MarkPending(ctx, im.lease(conv), m.MsgID, made)
	})
}

// park gives the conversation back, not to be claimed for d: its next
// message waits for a retry, or out the reconcile window. Its later
// messages wait with it, so the order holds. ended names an in-doubt
// message whose attempt this process has just ended ("": none).
func (im *Importer) park(ctx context.Context, conv *conversation, d time.Duration, ended string) error {
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.Park(ctx, im.lease(conv), d, conv.failures, ended)
	})
}

// release gives the lease back, marking the conversation done when nothing
// of it is left to send, or held behind a failed message.
func (im *Importer) release(ctx context.Context, conv *conversation, held bool) error {
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.Release(ctx, im.lease(conv), conv.failures, held)
	})
}

// saveChat records the conversation's Kommo chat id (from create-chat).
func (im *Importer) saveChat(ctx context.Context, conv *conversation) error {
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.SaveChat(ctx, im.cfg.ScopeID, conv.id, conv.chatID)
	})
}
