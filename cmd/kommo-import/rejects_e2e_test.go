package main_test

// Nightly re-syncs do not alert forever (issue 20, item 6): records an
// earlier run of the scope rejected are "known" and do not fail a later
// run; runs ack acknowledges a run's new ones; --max-rejects allows some.

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// exportWith writes msgs as JSONL with the bad lines after them.
func exportWith(t *testing.T, msgs []ledgertest.Msg, bad ...string) string {
	t.Helper()
	path := ledgertest.WriteJSONL(t, msgs)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, l := range bad {
		b = append(b, l+"\n"...)
	}
	out := filepath.Join(t.TempDir(), "export.jsonl")
	require.NoError(t, os.WriteFile(out, b, 0o600))
	return out
}

func TestE2EKnownRejectsDoNotFailANightlyResync(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	all := ledgertest.Gen(63, 10, 12)
	require.Greater(t, len(all), 40)
	// Each night's export has the last one's messages and newer ones.
	slices.SortFunc(all, func(a, b ledgertest.Msg) int { return cmp.Compare(a.Msec, b.Msec) })
	third := len(all) / 3
	// Two records every export has wrong: one byte for byte, one whose
	// content moves (a newer export formats it otherwise) under one msgid.
	broken := `{"msgid": "broken", "conversation_id": ` // not JSON
	badTS := func(ts string) string {
		return `{"msgid": "bad-ts", "conversation_id": "conv-000", "timestamp": "` + ts + `", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}`
	}
	night := func(name string, msgs []ledgertest.Msg, extra []string, bad ...string) result {
		return im.run(t, append([]string{"run", "--source", "jsonl:" + exportWith(t, msgs, bad...), "--run", name,
			"--progress", "none", "--rate", "unlimited"}, extra...)...)
	}

	// Night 1: both are new: exit 3, as ever.
	r := night("night-1", all[:third], nil, broken, badTS("soon"))
	requireCode(t, exitIncomplete, r)
	require.Contains(t, r.stderr, "0 failed messages and 2 rejected records")

	// Night 2: the same two again, and new messages: exit 0, and the
	// summary says the rejects were known.
	r = night("night-2", all[:2*third], nil, broken, badTS("later"))
	requireCode(t, exitDone, r)
	require.Regexp(t, `rejected:\s+2 = 2 known from earlier runs of the scope \(night-1\) \+ 0 acknowledged \+ 0 new`, r.stdout)
	st := im.statusMap(t, "night-2")
	require.Equal(t, "done", st["state"])
	require.EqualValues(t, 2, st["rejected_known"])
	require.EqualValues(t, 0, st["rejected_new"])

	// Night 3: one more bad record: exit 3 for that one alone.
	other := `{"msgid": "no-message", "conversation_id": "conv-001", "timestamp": 1709284502, "sender": {"id": "a", "name": "b"}}`
	r = night("night-3", all[:2*third+2], nil, broken, badTS("later"), other)
	requireCode(t, exitIncomplete, r)
	require.Contains(t, r.stderr, "1 new rejected record (2 more known from earlier runs of the scope)")
	require.Contains(t, r.stderr, "kommo-import runs ack night-3")
	require.Equal(t, "incomplete", im.statusMap(t, "night-3")["state"])

	// The operator has looked: runs ack; the run is done, and its command
	// again says so with exit 0.
	ack := im.run(t, "runs", "ack", "night-3")
	requireCode(t, exitDone, ack)
	require.Contains(t, ack.stdout, "1 rejected record of run night-3 acknowledged")
	require.Equal(t, "done", im.statusMap(t, "night-3")["state"])
	rep := im.run(t, "report", "--run", "night-3", "--format", "jsonl")
	requireCode(t, exitDone, rep)
	var lines []map[string]any
	dec := json.NewDecoder(strings.NewReader(rep.stdout))
	for dec.More() {
		var l map[string]any
		require.NoError(t, dec.Decode(&l))
		lines = append(lines, l)
	}
	require.Len(t, lines, 3)
	known := 0
	for _, l := range lines {
		if l["known_from"] != nil {
			known++
		} else {
			require.Equal(t, true, l["acked"], l)
		}
	}
	require.Equal(t, 2, known)

	// Night 4: a new bad record within --max-rejects 1: exit 0, said.
	r = night("night-4", all, []string{"--max-rejects", "1"}, broken,
		`{"msgid": "no-sender", "conversation_id": "conv-002", "timestamp": 1709284502, "message": {"type": "text", "text": "x"}}`)
	requireCode(t, exitDone, r)
	require.Regexp(t, `rejected:\s+2 = 1 known from earlier runs of the scope \(night-1\) \+ 0 acknowledged \+ 1 new, within --max-rejects 1`, r.stdout)
	// Every message once, in order (each night has its own loud ones).
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), all, nil)
}
