package main_test

// A later export that backfills older messages of chats already imported
// (issue 20, item 5): they are counted and named before anything is sent,
// and sent after the chats' newer ones (the default) or given up with
// --older skip.

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// backfill splits a history: the first export lacks the oldest three
// messages of the first four conversations (the backfill), which the
// second export (all) has.
func backfill() (all, first, older []ledgertest.Msg) {
	all = ledgertest.Gen(64, 8, 12)
	slices.SortFunc(all, func(a, b ledgertest.Msg) int { return cmp.Compare(a.Msec, b.Msec) })
	seen := map[string]int{}
	for _, m := range all {
		seen[m.Conv]++
		if m.Conv < "conv-004" && seen[m.Conv] <= 3 {
			older = append(older, m)
			continue
		}
		first = append(first, m)
	}
	return all, first, older
}

func TestE2EBackfillIsCountedThenSent(t *testing.T) {
	t.Parallel()
	all, first, older := backfill()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	requireCode(t, exitDone, im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, first), "--run", "night-1", "--progress", "none", "--rate", "unlimited"))

	r := im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, all), "--run", "night-2", "--progress", "none", "--rate", "unlimited")
	requireCode(t, exitDone, r)
	want := fmt.Sprintf("%d messages in 4 chats are older than what those chats already show", len(older))
	require.Contains(t, r.stdout, want, "the summary says it")
	require.Contains(t, r.stderr, want, "the log says it before sending")
	require.Regexp(t, `conv-00[0-3] \(3\)`, r.stderr, "and names the chats")
	st := im.statusMap(t, "night-2")
	require.EqualValues(t, len(older), st["older"])
	require.EqualValues(t, 4, st["older_conversations"])
	require.Equal(t, "send", st["older_mode"])
	require.Contains(t, im.statusText(t, "night-2"), want)

	// Sent, after their chats' newer messages: the ledger has each once.
	entries := ledgertest.ReadLedger(t, s.ledger)
	require.Len(t, entries, len(all))
	var got, want2 []string
	for _, e := range entries[len(entries)-len(older):] {
		require.True(t, e.Silent, "an older message is never the loud one")
		got = append(got, e.MsgID)
	}
	for _, m := range older {
		want2 = append(want2, m.ID)
	}
	slices.Sort(got)
	slices.Sort(want2)
	require.Equal(t, want2, got, "the backfill went out last, after the chats' newer messages")
}

func TestE2EBackfillSkipped(t *testing.T) {
	t.Parallel()
	all, first, older := backfill()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	requireCode(t, exitDone, im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, first), "--run", "night-1", "--progress", "none", "--rate", "unlimited"))

	r := im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, all), "--run", "night-2", "--progress", "none", "--rate", "unlimited",
		"--older", "skip", "--json")
	requireCode(t, exitDone, r)
	var sum kimport.Summary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum))
	require.EqualValues(t, len(older), sum.GivenUp)
	require.EqualValues(t, 0, sum.SentNow, "nothing new but the backfill, given up")
	require.Contains(t, r.stderr, fmt.Sprintf("%d messages in 4 chats are older than what those chats already show: given up (--older skip)", len(older)))
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), first, ledgertest.Newest(first))

	rep := im.run(t, "report", "--run", "night-2", "--format", "jsonl")
	requireCode(t, exitDone, rep)
	require.Equal(t, len(older), strings.Count(rep.stdout, `"kind":"given_up"`), rep.stdout)
	require.Contains(t, rep.stdout, "older than what its chat already shows")
}
