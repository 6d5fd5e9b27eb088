package importer

import (
	"context"
	"fmt"

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
