package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
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

// Reject is a source record that staging refused.
type Reject struct {
	Line   int64  `json:"line"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Raw    []byte `json:"raw"` // the record as read, capped at 64 KiB
	MsgID  string `json:"msgid,omitempty"`
	// KnownFrom is an earlier run of the scope that rejected the same
	// record (or msgid): reported then, it does not fail this run.
	KnownFrom string `json:"known_from,omitempty"`
	Acked     bool   `json:"acked,omitempty"` // acknowledged (runs ack)
}

// EachFailed calls fn for each failed message of run, in source order. Rows
// are streamed from the database, so a run with millions of failures is
// listed in constant memory; fn's error stops the listing and is returned.
// fn must not keep m: it is reused for the next row. A run the database does not have gives ErrNoRun.
func EachFailed(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *FailedMessage) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var m FailedMessage
	err := q.EachFailed(ctx, run, func(r *store.FailedRow) error {
		m = FailedMessage(*r)
		return fn(&m)
	})
	if err != nil {
		return fmt.Errorf("failed messages of %s: %w", run, err)
	}
	return nil
}

// EachReject calls fn for each rejected record of run, in source order,
// streaming like EachFailed (r is reused too). A run the database does not have gives ErrNoRun.
func EachReject(ctx context.Context, pool *pgxpool.Pool, run string, fn func(r *Reject) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var r Reject
	err := q.EachReject(ctx, run, func(row *store.RejectedRow) error {
		r = Reject(*row)
		return fn(&r)
	})
	if err != nil {
		return fmt.Errorf("rejects of %s: %w", run, err)
	}
	return nil
}

// EachSent calls fn for each sent message of run, conversation by
// conversation in the order they were sent, streaming like EachFailed (m
// is reused). A run the database does not have gives ErrNoRun.
func EachSent(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *SentMessage) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var m SentMessage
	err := q.EachSent(ctx, run, func(r *store.SentRow) error {
		m = SentMessage{MsgID: r.MsgID, ConversationID: r.ConversationID, KommoMsgID: r.KommoMsgID, KommoChatID: r.KommoChatID,
			MessageTime: time.UnixMilli(r.Msec).UTC(), SentAt: r.SentAt.UTC(), Silent: r.Silent, Reconciled: r.Reconciled}
		return fn(&m)
	})
	if err != nil {
		return fmt.Errorf("sent messages of %s: %w", run, err)
	}
	return nil
}

func checkRun(ctx context.Context, q *store.Queries, run string) error {
	ok, err := q.RunExists(ctx, run)
	if err != nil {
		return fmt.Errorf("run %s: %w", run, err)
	}
	if !ok {
		return fmt.Errorf("%w %q", ErrNoRun, run)
	}
	return nil
}
