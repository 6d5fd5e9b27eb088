package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A run nobody can finish must never hold messages back. A run whose
// processes are all gone is not live: the next run that stages one of its
// unsent msgids takes it over (stage.go). An operator can also abandon a
// run (it is never resumed, and its unsent msgids go to whichever run stages
// them next) or delete one that sent nothing.

const lockRunRow = `SELECT abandoned_at IS NOT NULL FROM kommo_import_runs WHERE name = $1 FOR UPDATE`

const countLive = `SELECT count(*) FROM kommo_import_live_processes WHERE run_name = $1`

const abandonRun = `
WITH leases AS (
    UPDATE kommo_import_conversations SET lease_owner = NULL, lease_until = NULL
    WHERE run_name = $1 AND lease_owner IS NOT NULL
)
UPDATE kommo_import_runs SET abandoned_at = now(), updated_at = now() WHERE name = $1`

// countKept counts what makes a run's rows the scope's memory: messages sent,
// or in doubt (their request may have landed).
const countKept = `SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND state IN ('sent', 'sending')`

var deleteRunRows = []string{
	`DELETE FROM kommo_import_messages WHERE run_name = $1`,
	`DELETE FROM kommo_import_conversations WHERE run_name = $1`,
	`DELETE FROM kommo_import_rejects WHERE run_name = $1`,
	`DELETE FROM kommo_import_processes WHERE run_name = $1`,
	`DELETE FROM kommo_import_runs WHERE name = $1`,
}

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
		_, err = tx.Exec(ctx, abandonRun, run)
		return err
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
		var kept int64
		if err := tx.QueryRow(ctx, countKept, run).Scan(&kept); err != nil {
			return err
		}
		if kept > 0 {
			return fmt.Errorf("%w (%d sent or in doubt)", ErrRunHasSent, kept)
		}
		for _, sql := range deleteRunRows {
			if _, err := tx.Exec(ctx, sql, run); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoRun) && !errors.Is(err, ErrRunLive) && !errors.Is(err, ErrRunHasSent) {
		return fmt.Errorf("delete run %s: %w", run, err)
	}
	return err
}

// lockRunForOperator locks the run's row for the transaction and refuses a run that a
// live process works. It reports whether the run is abandoned already.
func lockRunForOperator(ctx context.Context, tx pgx.Tx, run string) (abandoned bool, err error) {
	err = tx.QueryRow(ctx, lockRunRow, run).Scan(&abandoned)
	if isNoRows(err) {
		return false, fmt.Errorf("%w %q", ErrNoRun, run)
	}
	if err != nil {
		return false, err
	}
	var live int64
	if err := tx.QueryRow(ctx, countLive, run).Scan(&live); err != nil {
		return false, err
	}
	if live > 0 {
		return false, fmt.Errorf("%w (%d live processes): stop them first", ErrRunLive, live)
	}
	return abandoned, nil
}
