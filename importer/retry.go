package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// ResetFailed puts every failed message of run back to pending, with its
// last error cleared and its silent flag decided again by the plan's rule,
// and marks their conversations not done, all in one transaction. A Run of
// the same run then sends them (it skips staging and planning, which are
// done). It returns how many messages were reset; ErrNoRun for an unknown
// run, ErrNotPlanned for one still staging.
func ResetFailed(ctx context.Context, pool *pgxpool.Pool, run string) (int64, error) {
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
		if n, convs, err = q.ResetFailed(ctx, run); err != nil || n == 0 {
			return err
		}
		// The plan's rule again, for these conversations: a failed message
		// that was the newest was loud when it failed and is loud again;
		// any other stays silent.
		if err := q.Plan(ctx, run, r.Scope, r.Notify, convs); err != nil {
			return err
		}
		return q.ReopenRun(ctx, run)
	})
	if err != nil {
		if errors.Is(err, ErrNoRun) || errors.Is(err, ErrNotPlanned) {
			return 0, err
		}
		return 0, fmt.Errorf("reset failed messages of %s: %w", run, err)
	}
	return n, nil
}
