package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const markPlanned = `UPDATE kommo_import_runs SET planned = true, updated_at = now() WHERE name = $1 AND NOT planned`

// planSilent decides each pending message's silent flag in one pass. The loud
// message of a conversation is the newest among everything the scope has
// ever had for it (this run and earlier ones, by msec_timestamp, then staging
// order), and only if it is this run's to send: when the newest is already
// sent, or belongs to another run, all of this run's messages are silent.
const planSilent = `
UPDATE kommo_import_messages m
SET silent = ($2 = 'none' OR m.msgid <> n.msgid)
FROM (
    SELECT DISTINCT ON (conversation_id) conversation_id, msgid
    FROM kommo_import_messages
    WHERE scope_id = $3
      AND conversation_id IN (SELECT conversation_id FROM kommo_import_messages WHERE run_name = $1)
    ORDER BY conversation_id, msec_timestamp DESC, seq DESC
) n
WHERE m.run_name = $1 AND m.conversation_id = n.conversation_id AND m.state = 'pending'`

const planConversations = `
INSERT INTO kommo_import_conversations (run_name, conversation_id, messages)
SELECT $1, conversation_id, count(*)
FROM kommo_import_messages
WHERE run_name = $1 AND state IN ('pending', 'sending')
GROUP BY conversation_id
ON CONFLICT (run_name, conversation_id) DO NOTHING`

// planWith plans the run in one transaction on conn (which holds the run lock).
func (im *Importer) planWith(ctx context.Context, conn *pgxpool.Conn) error {
	im.stats.phase.Store(PhasePlanning)
	started := time.Now()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, markPlanned, im.cfg.Run)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		// Staging just loaded the rows: without fresh statistics the
		// planner picks nested loops that take minutes on a large run.
		if _, err := tx.Exec(ctx, "ANALYZE kommo_import_messages"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, planSilent, im.cfg.Run, im.cfg.Notify, im.cfg.ScopeID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, planConversations, im.cfg.Run)
		return err
	})
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	im.log.Info("planning done", "run", im.cfg.Run, "elapsed", time.Since(started).Round(time.Millisecond))
	return nil
}
