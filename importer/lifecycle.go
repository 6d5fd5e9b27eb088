package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// A run nobody can finish must never hold messages back. A run whose
// processes are all gone is not live: the next run that stages one of its
// unsent msgids takes it over (stage.go). An operator can also abandon a
// run (it is never resumed, and its unsent msgids go to whichever run stages
// them next) or delete one that sent nothing.

// AbandonRun marks run abandoned: it is never resumed, and its msgids not yet
// sent are taken over by the next run that stages them (an in-doubt one is
// looked up in its chat's history first, as always). It returns ErrNoRun for
// an unknown run and ErrRunLive while a process works it. Abandoning an
// abandoned run does nothing.
func AbandonRun(ctx context.Context, pool *pgxpool.Pool, run string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		abandoned, err := lockRunForOperator(ctx, tx, run)
		if err != nil || abandoned {
			return err
		}
		return store.New(tx).AbandonRun(ctx, run)
	})
	if err != nil && !errors.Is(err, ErrNoRun) && !errors.Is(err, ErrRunLive) {
		return fmt.Errorf("abandon run %s: %w", run, err)
	}
	return err
}

// DeleteRun removes run and every row of it. A run that sent messages (or
// has messages in doubt) cannot be deleted: its rows are what keeps a
// re-sync from sending them twice (ErrRunHasSent; abandon it instead).
// It returns ErrNoRun for an unknown run and ErrRunLive while a process works it.
func DeleteRun(ctx context.Context, pool *pgxpool.Pool, run string) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := lockRunForOperator(ctx, tx, run); err != nil {
			return err
		}
		q := store.New(tx)
		kept, err := q.CountKept(ctx, run)
		if err != nil {
			return err
		}
		if kept > 0 {
			return fmt.Errorf("%w (%d sent or in doubt)", ErrRunHasSent, kept)
		}
		return q.DeleteRun(ctx, run)
	})
	if err != nil && !errors.Is(err, ErrNoRun) && !errors.Is(err, ErrRunLive) && !errors.Is(err, ErrRunHasSent) {
		return fmt.Errorf("delete run %s: %w", run, err)
	}
	return err
}

// lockRunForOperator locks the run's row for the transaction and refuses a run that a
// live process works. It reports whether the run is abandoned already.
func lockRunForOperator(ctx context.Context, tx pgx.Tx, run string) (abandoned bool, err error) {
	q := store.New(tx)
	abandoned, err = q.LockRunRow(ctx, run)
	if isNoRows(err) {
		return false, fmt.Errorf("%w %q", ErrNoRun, run)
	}
	if err != nil {
		return false, err
	}
	live, err := q.CountLive(ctx, run)
	if err != nil {
		return false, err
	}
	if live > 0 {
		return false, fmt.Errorf("%w (%d live processes): stop them first", ErrRunLive, live)
	}
	return abandoned, nil
}
