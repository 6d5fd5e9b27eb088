package main_test

// status tells the truth (issue 20, item 3): after a kill -9 it does not
// show an earlier Ctrl-C's reason as current; a run that sent one message
// shows that delivery; after a takeover every run's counts add up to what
// it staged and took over, and say where the rest went.

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// statusMap is `status --json` of run, as generic JSON.
func (im *importer) statusMap(t *testing.T, run string) map[string]any {
	t.Helper()
	r := im.run(t, "status", "--run", run, "--json")
	requireCode(t, exitDone, r)
	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	return st
}

// statusText is `status` of run, as people read it.
func (im *importer) statusText(t *testing.T, run string) string {
	t.Helper()
	r := im.run(t, "status", "--run", run)
	requireCode(t, exitDone, r)
	return r.stdout
}

// waitAccepted waits until the simulator has accepted more than n messages.
func waitAccepted(t *testing.T, s *simProc, n int64, p *started) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted > n
	}, 60*time.Second, 10*time.Millisecond, "sending went on: %s", p.errOut.String())
}

func TestE2EStatusAfterAKillDoesNotShowAnEarlierStop(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(61, 20, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "2")

	first := im.start(t, args...)
	waitAccepted(t, s, 20, first)
	require.NoError(t, syscall.Kill(first.cmd.pid, syscall.SIGTERM))
	requireCode(t, exitInterrupted, first.wait(t, time.Minute))
	require.Contains(t, im.statusText(t, e2eRun), "interrupted by a signal", "the Ctrl-C is the run's story for now")

	second := im.start(t, args...)
	waitAccepted(t, s, s.stats(t).Accepted+10, second)
	second.kill(t)

	text := im.statusText(t, e2eRun)
	t.Logf("status after the kill:\n%s", text)
	require.NotContains(t, text, "interrupted by a signal", "the earlier Ctrl-C is not the last invocation's story")
	require.Regexp(t, `stopped because\s+the last process \(.* pid `+strconv.Itoa(second.cmd.pid)+`\) ended without recording a stop`, text)
	st := im.statusMap(t, e2eRun)
	require.Empty(t, st["stop_reason"])
	lost, _ := st["lost_process"].(map[string]any)
	require.NotNil(t, lost, "status --json names the process that died: %v", st)
	require.EqualValues(t, second.cmd.pid, lost["pid"])

	// The run resumed to its end records that end: nothing is lost any more.
	requireCode(t, exitDone, im.run(t, args...))
	st = im.statusMap(t, e2eRun)
	require.Nil(t, st["lost_process"])
	require.Empty(t, st["stop_reason"])
	require.Equal(t, "done", st["state"])
	s.requireExact(t, msgs)
}

func TestE2EStatusShowsTheDeliveryOfARunOfOneMessage(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	msgs := []ledgertest.Msg{{Conv: "conv-1", ID: "only", Msec: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()}}
	requireCode(t, exitDone, im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited")...))

	text := im.statusText(t, e2eRun)
	require.NotContains(t, text, "none yet", text)
	require.Regexp(t, `last delivery\s+(just now|\d+s ago)`, text)
	st := im.statusMap(t, e2eRun)
	require.NotEmpty(t, st["progress_at"], "status --json has the delivery's time")
	s.requireExact(t, msgs)
}

// messagesLine matches status's breakdown of a run's messages.
var messagesLine = regexp.MustCompile(`messages\s+([\d,]+) staged \+ ([\d,]+) taken over = ([\d,]+) sent \+ ([\d,]+) pending \+ ([\d,]+) in doubt \+ ([\d,]+) held \+ ([\d,]+) failed \+ ([\d,]+) given up \+ ([\d,]+) handed over`)

// requireAddsUp checks that status's text and JSON break the run's messages
// down into counts that add up, and returns the JSON breakdown.
func requireAddsUp(t *testing.T, im *importer, run string) map[string]float64 {
	t.Helper()
	text := im.statusText(t, run)
	m := messagesLine.FindStringSubmatch(text)
	require.NotNil(t, m, "status of %s breaks its messages down:\n%s", run, text)
	var n [9]int64
	for i := range n {
		v, err := strconv.ParseInt(strings.ReplaceAll(m[i+1], ",", ""), 10, 64)
		require.NoError(t, err)
		n[i] = v
	}
	require.Equal(t, n[0]+n[1], n[2]+n[3]+n[4]+n[5]+n[6]+n[7]+n[8], "the text adds up: %s", m[0])

	st := im.statusMap(t, run)
	raw, ok := st["messages"].(map[string]any)
	require.True(t, ok, "status --json has the breakdown: %v", st)
	c := map[string]float64{}
	for k, v := range raw {
		c[k] = v.(float64)
	}
	require.Equal(t, c["staged"]+c["taken_over"],
		c["sent"]+c["pending"]+c["in_doubt"]+c["held"]+c["failed"]+c["given_up"]+c["handed_over"], "the JSON adds up: %v", c)
	require.Equal(t, float64(n[0]), c["staged"])
	require.Equal(t, float64(n[8]), c["handed_over"])

	// runs lists the same breakdown.
	r := im.run(t, "runs", "--json")
	requireCode(t, exitDone, r)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &runs))
	for _, rs := range runs {
		if rs["run"] == run {
			require.Equal(t, raw, rs["messages"])
		}
	}
	require.Contains(t, im.run(t, "runs").stdout, "HANDED OVER")
	return c
}

func TestE2EStatusCountsAddUpAfterATakeover(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(62, 20, 30)
	source := "jsonl:" + ledgertest.WriteJSONL(t, msgs)
	args := func(run string) []string {
		return []string{"run", "--source", source, "--run", run, "--progress", "none", "--json", "--reconcile-wait", "300ms", "--rate", "unlimited", "--workers", "3"}
	}

	first := im.start(t, args("night-1")...)
	waitAccepted(t, s, 60, first)
	first.kill(t)

	// The next night's run stages the same msgids and takes the unsent over.
	r := im.run(t, args("night-2")...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)

	a := requireAddsUp(t, im, "night-1")
	b := requireAddsUp(t, im, "night-2")
	require.Positive(t, a["handed_over"], "night-1 handed its unsent messages over")
	require.Equal(t, a["handed_over"], b["taken_over"])
	require.Equal(t, float64(len(msgs)), a["sent"]+b["sent"])
	require.Zero(t, a["pending"]+a["in_doubt"])
	text := im.statusText(t, "night-1")
	require.Regexp(t, `state\s+done: everything sent or handed over`, text)
	require.Contains(t, text, "handed over to later runs")
}
