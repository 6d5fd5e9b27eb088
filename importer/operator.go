package importer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// AckRejects acknowledges run's new rejected records (those no earlier run
// of the scope rejected too): an operator has seen them, and they no
// longer make the run incomplete. It returns how many; ErrNoRun for an
// unknown run. Records rejected later (a resumed staging) are new again.
func AckRejects(ctx context.Context, pool *pgxpool.Pool, run string) (int64, error) {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return 0, err
	}
	n, err := q.AckRejects(ctx, run)
	if err != nil {
		return 0, fmt.Errorf("acknowledge the rejects of %s: %w", run, err)
	}
	return n, nil
}

// EachGivenUp calls fn for each message of run given up for good (retry
// --skip, --older skip), in source order, with the reason, streaming like
// EachFailed (m is reused). A run the database does not have gives ErrNoRun.
func EachGivenUp(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *FailedMessage) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var m FailedMessage
	err := q.EachGivenUp(ctx, run, func(r *store.FailedRow) error {
		m = FailedMessage(*r)
		return fn(&m)
	})
	if err != nil {
		return fmt.Errorf("given-up messages of %s: %w", run, err)
	}
	return nil
}

// RepairMissing puts the messages of run that verify recorded as failed
// (found missing from their chat) back to pending, as ResetFailed does with
// them: a Run of the run then sends them, in order within their
// conversations. It returns how many; 0 when verify marked none.
func RepairMissing(ctx context.Context, pool *pgxpool.Pool, run string) (int64, error) {
	ids, err := store.New(pool).VerifyMarked(ctx, run)
	if err != nil {
		return 0, fmt.Errorf("missing messages of %s: %w", run, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return ResetFailed(ctx, pool, run, Selection{MsgIDs: ids})
}
