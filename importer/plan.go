package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const markPlanned = `UPDATE kommo_import_runs SET planned = true, updated_at = now() WHERE name = $1 AND NOT planned`

// planSilent decides the silent flag of the run's unsent messages in one
// pass, for all its conversations or (retry) those in $4. The loud message
// of a conversation is the newest among everything the scope has ever had
// for it (this run and earlier ones, by msec_timestamp, then staging order)
// — the newest incoming one with notify newest-incoming — and only if it is
// this run's to send: when it is already sent, or another run's, all of
// this run's messages are silent. A message in doubt keeps the flag it may
// have gone out with.
const planSilent = `
UPDATE kommo_import_messages m
SET silent = ($2 = 'none' OR m.msgid IS DISTINCT FROM n.msgid)
FROM (SELECT DISTINCT conversation_id FROM kommo_import_messages
      WHERE run_name = $1 AND ($4::text[] IS NULL OR conversation_id = ANY($4))) c
LEFT JOIN LATERAL (
    SELECT msgid FROM kommo_import_messages
    WHERE scope_id = $3 AND conversation_id = c.conversation_id AND ($2 <> 'newest-incoming' OR NOT outgoing)
    ORDER BY msec_timestamp DESC, seq DESC
    LIMIT 1
) n ON true
WHERE m.run_name = $1 AND m.conversation_id = c.conversation_id
  AND (m.state = 'pending' OR (m.state = 'sending' AND m.silent IS NULL))`

// planConversations lists the run's conversations with messages to send;
// a conversation planned before (retry, a run that took messages over) is
// opened again with its count.
const planConversations = `
INSERT INTO kommo_import_conversations (run_name, conversation_id, messages)
SELECT $1, conversation_id, count(*)
FROM kommo_import_messages
WHERE run_name = $1 AND state IN ('pending', 'sending') AND ($2::text[] IS NULL OR conversation_id = ANY($2))
GROUP BY conversation_id
ON CONFLICT (run_name, conversation_id) DO UPDATE SET done = false, messages = EXCLUDED.messages`

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
		return plan(ctx, tx, im.cfg.Run, im.cfg.ScopeID, im.cfg.Notify, nil)
	})
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	im.log.Info("planning done", "run", im.cfg.Run, "elapsed_seconds", time.Since(started).Seconds())
	return nil
}

// plan decides the silent flags and lists the conversations to send, of the
// whole run (convs nil) or of the conversations convs.
func plan(ctx context.Context, tx pgx.Tx, run, scope string, notify Notify, convs []string) error {
	if _, err := tx.Exec(ctx, planSilent, run, notify, scope, convs); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, planConversations, run, convs)
	return err
}
