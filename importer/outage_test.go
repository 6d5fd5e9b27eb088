package importer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
)

// proxiedPool returns a pool on a fresh database reached through a dbProxy.
func proxiedPool(t *testing.T) (*pgxpool.Pool, *pgtest.Proxy) {
	t.Helper()
	p, dbURL := pgtest.NewProxy(t, pgtest.URL(t))
	pool, err := importer.Connect(context.Background(), dbURL, 10)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Apply(context.Background(), pool)
	require.NoError(t, err)
	return pool, p
}

func TestDatabaseOutageIsWaitedOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{Latency: 2 * time.Millisecond})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	msgs := ledgertest.Gen(11, 10, 40)
	im := h.importer("outage", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = 300 })
	go func() {
		for im.Progress().SentNow < 50 {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.SetDown(true)
		time.Sleep(1500 * time.Millisecond)
		proxy.SetDown(false)
	}()
	sum, err := im.Run(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	require.Zero(t, h.sim.Stats().Duplicates)
}

func TestDatabaseGoneStopsCleanlyAndResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{Latency: 2 * time.Millisecond})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	msgs := ledgertest.Gen(12, 10, 40)
	path := ledgertest.WriteJSONL(t, msgs)
	im := h.importer("gone", path, func(c *importer.Config) { c.Rate = 300; c.DBOutageLimit = time.Second })
	go func() {
		for im.Progress().SentNow < 50 {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.SetDown(true)
	}()
	_, err := im.Run(context.Background(), nil)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	require.Contains(t, err.Error(), "database has been unavailable")

	proxy.SetDown(false)
	// Messages whose "sent" checkpoint was lost are in doubt: found in history, not resent.
	sum := h.run("gone", path, nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}
