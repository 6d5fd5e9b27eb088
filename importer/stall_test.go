package importer_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
)

// TestSeveralRunsInOneDatabaseNeverStall reproduces the stall of a re-sync in a
// database that already holds other runs: the same export imported under four
// scopes into one database. With generic plans (what PostgreSQL switches to
// after a few executions of a prepared statement), the claim once leased every
// claimable conversation to one worker, which then worked one of them while
// the heartbeat renewed the rest forever.
func TestSeveralRunsInOneDatabaseNeverStall(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Apply(context.Background(), pool)
	require.NoError(t, err)

	msgs := ledgertest.Gen(40, 200, 40)
	path := ledgertest.WriteJSONL(t, msgs)
	for run := range 4 {
		scope := fmt.Sprintf("chan-1_acct-%d", run)
		s, err := sim.New(sim.Options{ScopeID: scope, Secret: testSecret})
		require.NoError(t, err)
		srv := httptest.NewServer(s)
		t.Cleanup(srv.Close)
		client, err := chatsapi.New(chatsapi.Config{BaseURL: srv.URL, ScopeID: scope, Secret: testSecret, Timeout: 2 * time.Second})
		require.NoError(t, err)
		im, err := importer.New(pool, client, importer.Config{
			Run: fmt.Sprintf("run-%d", run), ScopeID: scope,
			Open: openJSONL(path), Source: fileIdentity(t, path),
			Rate: -1, Workers: 8, ReconcileWait: 50 * time.Millisecond, RequestTimeout: 2 * time.Second,
		})
		require.NoError(t, err)
		// What autovacuum does a minute into a long run: statistics that
		// describe a database holding other runs.
		_, err = pool.Exec(context.Background(), "ANALYZE")
		require.NoError(t, err)
		// A stall never ends; a run takes about 6 s on a quiet machine under
		// -race and was seen at more than 30 s under make test-under-load
		// (two CPU burners and the package's parallel tests beside it).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		sum, err := im.Run(ctx, nil)
		cancel()
		require.NoError(t, err, "run %d stalled", run)
		require.Equal(t, importer.OutcomeDone, sum.Outcome)
		ledgertest.Check(t, s.Ledger(), msgs, ledgertest.Newest(msgs))
	}
}
