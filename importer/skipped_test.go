package importer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/sources"
)

// skippingSource is a source that, like a messenger export, skipped part of
// its input (group chats, service messages) and says so in its Stats.
type skippingSource struct{ fakeSource }

func (s *skippingSource) Stats() sources.Stats {
	st := s.fakeSource.Stats()
	st.Conversations = 4
	st.Skipped = map[string]int64{sources.SkipGroupChat: 2, sources.SkipServiceMessage: int64(s.i)}
	return st
}

// TestTheRunKeepsWhatTheSourceSkipped: the reader's skipped counts and
// conversations travel with staging's checkpoint into the run's row, so the
// summary and status say what the export held that was not imported.
func TestTheRunKeepsWhatTheSourceSkipped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(5, 4, 6)
	src := &skippingSource{fakeSource{recs: records(msgs)}}
	sum := h.run("skipping", "", func(c *importer.Config) {
		c.Open = func(context.Context) (importer.Source, error) { src.i = 0; return src, nil }
		c.Source, c.BatchSize = sources.Identity{Label: "telegram:/exports/x", Version: "v1"}, 5
	})
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	want := map[string]int64{sources.SkipGroupChat: 2, sources.SkipServiceMessage: int64(len(msgs))}
	require.Equal(t, want, sum.Skipped)
	require.EqualValues(t, 4, sum.Conversations)
	st, err := importer.Status(context.Background(), h.pool, "skipping")
	require.NoError(t, err)
	require.Equal(t, want, st.Skipped)

	// A source that skipped nothing has no map.
	plain := &fakeSource{recs: records(ledgertest.Gen(6, 2, 2))}
	sum = h.run("plain", "", func(c *importer.Config) {
		c.Open, c.Source = plain.open(), sources.Identity{Label: "jsonl:-", Stream: true}
	})
	require.Nil(t, sum.Skipped)
}
