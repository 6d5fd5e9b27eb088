package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// planWith plans the run in one transaction on conn (which holds the run lock).
func (im *Importer) planWith(ctx context.Context, conn *pgxpool.Conn) error {
	im.stats.phase.Store(PhasePlanning)
	started := time.Now()
	var older store.Older
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		q := im.q.WithTx(tx)
		marked, err := q.MarkPlanned(ctx, im.cfg.Run)
		if err != nil || !marked {
			return err
		}
		if err := q.Analyze(ctx); err != nil {
			return err
		}
		// A backfill is counted (and with --older skip given up) before
		// the conversations are listed (older.go).
		if older, err = im.planOlder(ctx, q); err != nil {
			return err
		}
		return q.Plan(ctx, im.cfg.Run, im.cfg.ScopeID, string(im.cfg.Notify), nil)
	})
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	im.sayOlder(older)
	im.log.Info("planning done", "run", im.cfg.Run, "elapsed_seconds", time.Since(started).Seconds())
	return nil
}
