package importer_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
)

// A second process of a run waits for the first to stage it, however long
// that takes, even under a role whose lock_timeout is short: before, it
// blocked in pg_advisory_lock and the lock_timeout ended it with exit 1.
func TestASecondProcessWaitsOutStagingUnderALockTimeout(t *testing.T) {
	h := newHarness(t, sim.Options{})
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("lock_timeout", "300ms") // a role's setting, as pgx passes it to the session
	u.RawQuery = q.Encode()
	pool, err := importer.Connect(context.Background(), u.String(), 10)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Apply(context.Background(), pool)
	require.NoError(t, err)
	h.pool = pool

	msgs := ledgertest.Gen(9, 40, 5)
	path := ledgertest.WriteJSONL(t, msgs)
	// "Another process stages the run": its staging lock, held for 2 s.
	holder, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(context.Background(), `SELECT pg_advisory_lock(hashtextextended('kommo-import run ' || $1, 0))`, "waits")
	require.NoError(t, err)
	time.AfterFunc(2*time.Second, func() {
		_, _ = holder.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtextextended('kommo-import run ' || $1, 0))`, "waits")
	})
	started := time.Now()
	sum := h.run("waits", path, nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome, sum.StopReason)
	require.GreaterOrEqual(t, time.Since(started), 2*time.Second, "it waited for the staging lock")
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}

// One rate per scope: a process given another --rate than a live process of
// the scope sends at is refused (before, both ran and drew 429s); with
// nobody live, the new rate is the scope's.
func TestOneRatePerScope(t *testing.T) {
	h := newHarness(t, sim.Options{})
	ctx := context.Background()
	msgs := ledgertest.Gen(5, 5, 3)
	path := ledgertest.WriteJSONL(t, msgs)
	// A live process of another run of the scope, sending at 10/s.
	sum := h.run("first", path, func(c *importer.Config) { c.Rate = 10 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	holder, err := h.pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, `SELECT pg_advisory_lock(4242)`)
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `INSERT INTO kommo_import_processes (run_name, process_id, host, pid, lock_key, expires_at)
		VALUES ('first', 'other-host/1/x', 'other-host', 1, 4242, now() + interval '1 minute')`)
	require.NoError(t, err)

	second := ledgertest.WriteJSONL(t, ledgertest.Gen(6, 3, 2))
	_, err = h.importer("second", second, func(c *importer.Config) { c.Rate = 7 }).Run(ctx, nil)
	var rateErr *importer.RateError
	require.ErrorAs(t, err, &rateErr)
	require.Equal(t, 10.0, rateErr.InForce)
	require.Empty(t, h.sim.Ledger()[len(msgs):], "nothing sent at the other rate")

	// The other process is gone: 7 is adopted.
	_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock(4242)`)
	require.NoError(t, err)
	var runs int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM kommo_import_runs WHERE name = 'second'`).Scan(&runs))
	require.Zero(t, runs, "a refused start leaves no run behind")
	sum = h.run("second", second, func(c *importer.Config) { c.Rate = 7 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome, sum.StopReason)
}
