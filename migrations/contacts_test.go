package migrations

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// TestContactCheckpoints walks 006's tables through the protocol the
// importer follows: an intent is written before its request and refused
// without what a resumed run needs to settle it; of workers racing to
// create one client's contact, exactly one wins the claim.
func TestContactCheckpoints(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	_, err := Apply(ctx, pool)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO kommo_import_runs (name, scope_id, source, notify, rate) VALUES ('r', 's', 'csv:x', 'newest', 5)`)
	require.NoError(t, err)

	violates := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		pgErr, ok := err.(*pgconn.PgError)
		require.True(t, ok, "%v", err)
		require.Equal(t, "23514", pgErr.Code, "check_violation: %s", sql)
	}
	violates(`INSERT INTO kommo_import_contact_matches (run_name, match_key, state) VALUES ('r', '+7|', 'creating')`) // no request_id
	violates(`INSERT INTO kommo_import_contact_matches (run_name, match_key, state) VALUES ('r', '+7|', 'found')`)    // no contact
	violates(`INSERT INTO kommo_import_contact_links (scope_id, conversation_id, run_name, state, method) VALUES ('s', 'c', 'r', 'linking', 'phone')`)
	violates(`INSERT INTO kommo_import_contact_links (scope_id, conversation_id, run_name, state, method) VALUES ('s', 'c', 'r', 'linked', 'teleport')`)

	// Eight workers of two processes race to create the same client's contact.
	const claim = `INSERT INTO kommo_import_contact_matches (run_name, match_key, state, request_id, attempted_at, attempts)
VALUES ('r', '+79161234567|a@x.test', 'creating', 'kimp-1', now(), 1) ON CONFLICT DO NOTHING`
	var won atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tag, err := pool.Exec(ctx, claim)
			require.NoError(t, err)
			won.Add(tag.RowsAffected())
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), won.Load())

	// A resumed worker takes over a stale attempt by compare-and-set: one does.
	var at any
	require.NoError(t, pool.QueryRow(ctx, `SELECT attempted_at FROM kommo_import_contact_matches WHERE match_key = '+79161234567|a@x.test'`).Scan(&at))
	const retake = `UPDATE kommo_import_contact_matches SET attempted_at = now(), attempts = attempts + 1
WHERE run_name = 'r' AND match_key = '+79161234567|a@x.test' AND state = 'creating' AND attempted_at = $1`
	won.Store(0)
	for range 4 {
		wg.Go(func() {
			tag, err := pool.Exec(ctx, retake, at)
			require.NoError(t, err)
			won.Add(tag.RowsAffected())
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), won.Load())

	_, err = pool.Exec(ctx, `UPDATE kommo_import_contact_matches SET state = 'created', method = 'created', contact_id = 42 WHERE match_key = '+79161234567|a@x.test'`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO kommo_import_contact_links (scope_id, conversation_id, run_name, match_key, state, method, chat_id, contact_id, attempted_at)
VALUES ('s', 'c', 'r', '+79161234567|a@x.test', 'linking', 'created', 'chat-1', 42, now())`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE kommo_import_contact_links SET state = 'linked', link_id = 7, linked_at = now() WHERE scope_id = 's' AND conversation_id = 'c'`)
	require.NoError(t, err)
}
