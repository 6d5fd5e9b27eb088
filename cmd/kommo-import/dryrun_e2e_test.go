package main_test

// run --dry-run (issue 20, item 9): what a run of the source would do,
// against the checkpoint database, with nothing sent, staged or changed.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// dbSnapshot is what the database holds of every run and message, to tell
// that nothing changed.
func dbSnapshot(t *testing.T, dbURL string) string {
	t.Helper()
	conn := connect(t, dbURL)
	var out strings.Builder
	for _, q := range []string{
		`SELECT name, staged, taken_over, handed_over, known_sent, known_other, updated_at::text, COALESCE(stop_reason, '') FROM kommo_import_runs ORDER BY name`,
		`SELECT run_name, msgid, state, line, COALESCE(silent::text, '') FROM kommo_import_messages ORDER BY msgid`,
		`SELECT run_name, conversation_id, done, messages FROM kommo_import_conversations ORDER BY 1, 2`,
	} {
		rows, err := conn.Query(context.Background(), q)
		require.NoError(t, err)
		for rows.Next() {
			vals, err := rows.Values()
			require.NoError(t, err)
			fmt.Fprintln(&out, vals...)
		}
		require.NoError(t, rows.Err())
	}
	return out.String()
}

func TestE2EDryRunSaysWhatARunWouldDo(t *testing.T) {
	t.Parallel()
	all := ledgertest.Gen(69, 8, 14)
	slices.SortFunc(all, func(a, b ledgertest.Msg) int { return cmp.Compare(a.Msec, b.Msec) })
	// The first export lacks the oldest two messages of conv-000 and
	// conv-001 (a backfill later), and the newest four of conv-004 to
	// conv-007 (what two later runs bring).
	count := map[string]int{}
	for _, m := range all {
		count[m.Conv]++
	}
	seen := map[string]int{}
	var first, older, tail1, tail2 []ledgertest.Msg
	for _, m := range all {
		seen[m.Conv]++
		switch {
		case m.Conv <= "conv-001" && seen[m.Conv] <= 2:
			older = append(older, m)
		case (m.Conv == "conv-004" || m.Conv == "conv-005") && seen[m.Conv] > count[m.Conv]-4:
			tail1 = append(tail1, m)
		case (m.Conv == "conv-006" || m.Conv == "conv-007") && seen[m.Conv] > count[m.Conv]-4:
			tail2 = append(tail2, m)
		default:
			first = append(first, m)
		}
	}
	require.Len(t, older, 4)
	require.Len(t, tail1, 8)
	require.Len(t, tail2, 8)

	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	run := func(name string, msgs []ledgertest.Msg, extra ...string) []string {
		return append([]string{"run", "--source", "jsonl:" + ledgertest.WriteJSONL(t, msgs), "--run", name, "--progress", "none"}, extra...)
	}
	requireCode(t, exitDone, im.run(t, run("night-1", first, "--rate", "unlimited")...))
	// A run killed after its first message: the rest of its messages are
	// held by a run no process works.
	stale := im.start(t, run("stale", append(slices.Clone(first), tail1...), "--rate", "1")...)
	waitAccepted(t, s, int64(len(first)), stale)
	stale.kill(t)
	// A run that a process works: its messages are its own.
	live := im.start(t, run("live", append(slices.Clone(first), tail2...), "--rate", "0.5")...)
	waitAccepted(t, s, s.stats(t).Accepted, live)

	// The live process goes on sending a message every 2 s while the dry
	// runs look (more than 2 s in all on a loaded machine): the states of
	// its run's messages and conversations are its own to change.
	liveStates := regexp.MustCompile(`(?m)^live ((?:m|conv)-\S+) \S+ `)
	snapshot := func() string { return liveStates.ReplaceAllString(dbSnapshot(t, im.dbURL), "live $1 (its process's) ") }
	before := snapshot()
	r := im.run(t, run("night-2", all, "--rate", "5", "--dry-run", "--json", "--link-contacts")...)
	requireCode(t, exitDone, r)
	require.True(t, live.running(), "the live run was live throughout")
	require.Equal(t, before, snapshot(), "the dry run changed nothing")
	st := im.run(t, "status", "--run", "night-2")
	require.Equal(t, 2, st.code, "no run night-2 was made: %s", st.stdout)

	var rep map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	n := func(k string) int64 {
		v, ok := rep[k].(float64)
		require.True(t, ok, "%s in %s", k, r.stdout)
		return int64(v)
	}
	sentByStale, sentByLive := n("take_over"), n("held")
	require.EqualValues(t, len(all), n("records"))
	require.EqualValues(t, len(older), n("new"), "the backfill is all that is new")
	require.EqualValues(t, len(older), n("older"))
	require.EqualValues(t, 2, n("older_chats"))
	require.Positive(t, sentByStale)
	// stale sent one message before the kill, or its request was in
	// flight (in doubt: looked up before it is sent again).
	require.True(t, sentByStale < int64(len(tail1)) || n("in_doubt") > 0, "%d to take over, %d in doubt", sentByStale, n("in_doubt"))
	require.Positive(t, sentByLive)
	require.Equal(t, []any{"stale"}, rep["taken_from"])
	require.Equal(t, []any{"live"}, rep["held_by"])
	require.Equal(t, n("records"), n("new")+n("already_sent")+n("resumed")+n("settled")+n("held")+n("take_over"), "the counts add up: %s", r.stdout)
	require.Equal(t, n("new")+n("take_over"), n("to_send"))
	require.EqualValues(t, 2+2, n("chats_to_send"), "the backfilled chats and stale's")
	require.EqualValues(t, 2, n("loud_chats"), "stale's chats get their newest message; a backfill is never loud")
	require.InDelta(t, float64(n("requests"))/5, rep["estimated_seconds"], 0.001)
	require.Contains(t, rep["contacts"], "kommo-import contacts plan")

	// The same, for people.
	r = im.run(t, run("night-2", all, "--rate", "5", "--dry-run")...)
	requireCode(t, exitDone, r)
	t.Logf("dry run:\n%s", r.stdout)
	require.Contains(t, r.stdout, "nothing was sent, staged or changed")
	require.Contains(t, r.stdout, "the run:             new: this command starts it")
	m := regexp.MustCompile(`messages:\s+([\d,]+) in the source = ([\d,]+) new\s+\+ ([\d,]+) already sent`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m, r.stdout)
	require.Equal(t, strconv.Itoa(len(all)), m[1])
	require.Contains(t, r.stdout, "4 messages in 2 chats are older than what those chats already show")
	require.Regexp(t, `estimated duration:\s+\d+ requests at 5 requests/s: about \d+s`, r.stdout)
	require.Equal(t, before, snapshot())
}
