package importer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

// TestDryRun: a dry run of a new run counts what it would send and leaves
// no run behind; of a finished one, everything is sent already; of
// another job under the run's name, it refuses as Run does.
func TestDryRun(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(70, 6, 5)
	path := ledgertest.WriteJSONL(t, msgs)

	rep, err := h.importer("r", path, nil).DryRun(ctx)
	require.NoError(t, err)
	require.False(t, rep.Exists)
	require.EqualValues(t, len(msgs), rep.New)
	require.EqualValues(t, len(msgs), rep.ToSend)
	require.EqualValues(t, 6, rep.ChatsToSend)
	require.EqualValues(t, 6, rep.LoudChats)
	require.Zero(t, rep.Seconds, "unlimited: no estimate")
	var runs int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*) FROM kommo_import_runs`).Scan(&runs))
	require.Zero(t, runs, "a dry run makes no run")

	require.Equal(t, importer.OutcomeDone, h.run("r", path, nil).Outcome)
	rep, err = h.importer("r", path, func(c *importer.Config) { c.Rate = 4 }).DryRun(ctx)
	require.NoError(t, err)
	require.True(t, rep.Exists)
	require.Equal(t, importer.RunDone, rep.State)
	require.EqualValues(t, len(msgs), rep.AlreadySent)
	require.Zero(t, rep.ToSend+rep.LoudChats+rep.Requests)

	other := ledgertest.WriteJSONL(t, msgs[:3])
	_, err = h.importer("r", other, nil).DryRun(ctx)
	var mismatch *importer.MismatchError
	require.ErrorAs(t, err, &mismatch)
	require.Equal(t, "source", mismatch.Field)
}
