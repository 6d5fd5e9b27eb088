package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// Selection picks failed messages of a run: those with the given msgids
// and those of the given conversations; both empty: every failed message.
type Selection = store.Selection

// ResetFailed puts the selected failed messages of run back to pending, with
// their last error cleared, and opens their conversations again (a
// conversation held behind a failed message is no longer held), all in one
// transaction. A Run of the same run then sends them, in order with the
// rest of their conversations (it skips staging and planning, which are
// done); whether each is loud is decided when it is sent. It returns how
// many messages were reset; ErrNoRun for an unknown run, ErrNotPlanned for
// one still staging.
func ResetFailed(ctx context.Context, pool *pgxpool.Pool, run string, sel Selection) (int64, error) {
	return settleFailed(ctx, pool, run, sel, (*store.Queries).ResetFailed)
}

// SkipFailed gives the selected failed messages of run up for good (state
// skipped: never sent, reported as skipped), so that their conversations
// go on without them: an operator's explicit choice to accept the gap.
func SkipFailed(ctx context.Context, pool *pgxpool.Pool, run string, sel Selection) (int64, error) {
	return settleFailed(ctx, pool, run, sel, (*store.Queries).SkipFailed)
}

func settleFailed(ctx context.Context, pool *pgxpool.Pool, run string, sel Selection,
	change func(*store.Queries, context.Context, string, store.Selection) (int64, []string, error)) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := store.New(tx)
		if err := q.LockRunTx(ctx, run); err != nil {
			return err
		}
		r, err := q.RunForRetry(ctx, run)
		if isNoRows(err) {
			return fmt.Errorf("%w %q", ErrNoRun, run)
		}
		if err != nil {
			return err
		}
		if !r.Planned {
			return fmt.Errorf("%s: %w", run, ErrNotPlanned)
		}
		var convs []string
		if n, convs, err = change(q, ctx, run, sel); err != nil || n == 0 {
			return err
		}
		// Their conversations are opened again (and no longer held).
		if err := q.Plan(ctx, run, r.Scope, r.Notify, convs); err != nil {
			return err
		}
		return q.ReopenRun(ctx, run)
	})
	if err != nil {
		if errors.Is(err, ErrNoRun) || errors.Is(err, ErrNotPlanned) {
			return 0, err
		}
		return 0, fmt.Errorf("failed messages of %s: %w", run, err)
	}
	return n, nil
}
