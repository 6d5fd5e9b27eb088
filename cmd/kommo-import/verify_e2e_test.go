package main_test

// verify as an operator uses it (issue 20, item 4; issue 16, item 8): it
// finds messages an API lost after answering 200, records them so that
// retry (or verify --repair) sends them, checks order as Kommo holds the
// chat, knows what a run still has in flight, shows progress and resumes.

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// setFaults changes the simulator's faults ("none": off).
func (p *simProc) setFaults(t *testing.T, spec string) {
	t.Helper()
	resp, err := http.Post(p.url+"/_sim/faults", "application/json", strings.NewReader(`{"spec":"`+spec+`"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// verifyJSON is verify --json's report, as a script reads it.
type verifyJSON struct {
	Conversations   int64       `json:"conversations"`
	Resumed         int64       `json:"conversations_resumed"`
	MissingCount    int64       `json:"missing_count"`
	DuplicatedCount int64       `json:"duplicated_count"`
	UnexpectedCount int64       `json:"unexpected_count"`
	InFlightCount   int64       `json:"in_flight_count"`
	OutOfOrderCount int64       `json:"out_of_order_count"`
	OutOfOrderChats int64       `json:"out_of_order_chats"`
	Marked          int64       `json:"marked_failed"`
	Missing         []issueJSON `json:"missing"`
	OutOfOrder      []issueJSON `json:"out_of_order"`
}

type issueJSON struct {
	MsgID string `json:"msgid"`
	After string `json:"after"`
}

func (r verifyJSON) clean() bool {
	return r.MissingCount+r.DuplicatedCount+r.UnexpectedCount+r.OutOfOrderCount == 0
}

// verifyReport runs verify with args and decodes its --json report.
func (im *importer) verifyReport(t *testing.T, wantCode int, args ...string) (verifyJSON, result) {
	t.Helper()
	r := im.run(t, append([]string{"verify", "--json", "--progress", "none"}, args...)...)
	requireCode(t, wantCode, r)
	var rep verifyJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	return rep, r
}

// lostOnce checks the ledger after a repair: every message of msgs exactly
// once, the newest of each chat the only loud one (a lost newest message
// is loud when sent again), and returns the msgids the simulator received
// after a newer message of their chat (the repaired ones).
func (p *simProc) lostOnce(t *testing.T, msgs []ledgertest.Msg) []string {
	t.Helper()
	entries := ledgertest.ReadLedger(t, p.ledger)
	seen := map[string]int{}
	newest := ledgertest.Newest(msgs)
	last := map[string]int64{}
	var late []string
	for _, e := range entries {
		seen[e.MsgID]++
		require.Equal(t, newest[e.ConversationID] == e.MsgID, !e.Silent, "silent flag of %s", e.MsgID)
		if e.MsecTimestamp < last[e.ConversationID] {
			late = append(late, e.MsgID)
		}
		last[e.ConversationID] = max(last[e.ConversationID], e.MsecTimestamp)
	}
	for _, m := range msgs {
		require.Equal(t, 1, seen[m.ID], "msgid %s in the ledger", m.ID)
	}
	require.Len(t, entries, len(msgs))
	require.Zero(t, p.stats(t).Duplicates)
	slices.Sort(late)
	return late
}

// lostRun imports msgs into a simulator that loses some messages after
// answering 200, and returns the msgids it lost.
func lostRun(t *testing.T, s *simProc, im *importer, msgs []ledgertest.Msg) []string {
	t.Helper()
	r := im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited")...)
	requireCode(t, exitDone, r)
	require.Equal(t, kimport.OutcomeDone, summary(t, r).Outcome, "the run cannot know")
	s.setFaults(t, "none")
	got := map[string]bool{}
	for _, e := range ledgertest.ReadLedger(t, s.ledger) {
		got[e.MsgID] = true
	}
	var lost []string
	for _, m := range msgs {
		if !got[m.ID] {
			lost = append(lost, m.ID)
		}
	}
	slices.Sort(lost)
	require.NotEmpty(t, lost)
	require.EqualValues(t, len(lost), s.stats(t).Lost)
	return lost
}

func TestE2EVerifyFindsLostMessagesThenRetrySendsThem(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--faults", "accept-lose=0.05", "--seed", "7")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(65, 20, 25)
	lost := lostRun(t, s, im, msgs)

	rep, r := im.verifyReport(t, exitIncomplete, "--run", e2eRun, "--reconcile-wait", "100ms")
	var missing []string
	for _, i := range rep.Missing {
		missing = append(missing, i.MsgID)
	}
	slices.Sort(missing)
	require.Equal(t, lost, missing, "verify lists the lost")
	require.EqualValues(t, len(lost), rep.Marked, "and records them as failed")
	require.Contains(t, r.stderr, "kommo-import retry --run e2e (or verify --repair) sends them again")

	rep2 := im.run(t, "report", "--run", e2eRun, "--format", "jsonl")
	requireCode(t, exitIncomplete, rep2)
	require.Equal(t, len(lost), strings.Count(rep2.stdout, `"last_error":"verify: recorded sent at`), rep2.stdout)
	st := im.status(t)
	require.Equal(t, kimport.RunIncomplete, st.State)
	require.EqualValues(t, len(lost), st.Failed)
	require.Zero(t, st.Held, "a message found missing holds nothing: the messages after it were sent")

	r = im.run(t, "retry", "--run", e2eRun, "--progress", "none", "--json", "--rate", "unlimited")
	requireCode(t, exitDone, r)
	require.EqualValues(t, len(lost), summary(t, r).SentNow)
	require.Subset(t, lost, s.lostOnce(t, msgs), "the ledger holds every message once")

	rep, _ = im.verifyReport(t, exitDone, "--run", e2eRun, "--reconcile-wait", "100ms")
	require.True(t, rep.clean(), "%+v", rep)
	require.Zero(t, rep.Marked)
}

func TestE2EVerifyRepairSendsTheLost(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--faults", "accept-lose=0.05", "--seed", "8")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(66, 20, 25)
	lost := lostRun(t, s, im, msgs)

	r := im.run(t, "verify", "--run", e2eRun, "--repair", "--reconcile-wait", "100ms", "--rate", "unlimited", "--progress", "none")
	requireCode(t, exitDone, r)
	require.Contains(t, r.stdout, "NOT clean")
	require.Regexp(t, `repair: \d+ messages? found missing sent again`, r.stdout)
	require.Subset(t, lost, s.lostOnce(t, msgs), "the ledger holds every message once")
	require.Equal(t, kimport.RunDone, im.status(t).State)
}

func TestE2EVerifyChecksOrderAsKommoHoldsIt(t *testing.T) {
	t.Parallel()
	all, first, older := backfill()
	s := startSim(t, "--rate", "0", "--history-order", "arrival")
	im := newImporter(t, s)
	requireCode(t, exitDone, im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, first), "--run", "night-1", "--progress", "none", "--rate", "unlimited"))
	requireCode(t, exitDone, im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, all), "--run", "night-2", "--progress", "none", "--rate", "unlimited"))

	rep, _ := im.verifyReport(t, exitDone, "--run", "night-1", "--reconcile-wait", "100ms", "--rate", "unlimited")
	require.True(t, rep.clean(), "night-1 arrived in order: %+v", rep)

	rep, r := im.verifyReport(t, exitIncomplete, "--run", "night-2", "--reconcile-wait", "100ms", "--rate", "unlimited")
	require.EqualValues(t, len(older), rep.OutOfOrderCount)
	require.EqualValues(t, 4, rep.OutOfOrderChats)
	var got, want []string
	for _, i := range rep.OutOfOrder {
		got = append(got, i.MsgID)
		require.NotEmpty(t, i.After, "names a newer message it came after")
	}
	for _, m := range older {
		want = append(want, m.ID)
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, want, got)
	require.Zero(t, rep.MissingCount+rep.DuplicatedCount+rep.UnexpectedCount)
	require.Contains(t, r.stderr, "sending cannot move it")

	text := im.run(t, "verify", "--run", "night-2", "--reconcile-wait", "100ms", "--rate", "unlimited", "--progress", "none")
	requireCode(t, exitIncomplete, text)
	require.Regexp(t, `out of order\tmsgid `+older[0].ID+`\tconversation `+older[0].Conv+`\tchat \S+\tafter m-`, text.stdout)
}

func TestE2EVerifyDuringARunReportsInFlight(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--history-delay", "1500ms", "--latency", "5ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(67, 12, 40)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "30", "--workers", "4")
	p := im.start(t, args...)
	waitAccepted(t, s, 60, p)

	// verify shares the scope's rate with the run, and keeps to it.
	rep, r := im.verifyReport(t, exitDone, "--run", e2eRun, "--rate", "30", "--reconcile-wait", "3s")
	require.True(t, p.running(), "the run was still sending when verify ended")
	require.Zero(t, rep.MissingCount, "a message sent within the window is not missing: %s", r.stdout)
	require.Zero(t, rep.UnexpectedCount)
	require.Positive(t, rep.InFlightCount, "messages the run sent in the last seconds are in flight")
	require.Zero(t, rep.Marked)

	requireCode(t, exitDone, p.wait(t, 2*time.Minute))
	s.requireExact(t, msgs)
}

func TestE2EVerifyShowsProgressAndResumes(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(68, 60, 3)
	requireCode(t, exitDone, im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited")...))
	convs := map[string]bool{}
	for _, m := range msgs {
		convs[m.Conv] = true
	}
	history := func() int64 { return s.stats(t).ByEndpoint["history"] }
	before := history()

	p := im.start(t, "verify", "--run", e2eRun, "--rate", "10", "--reconcile-wait", "100ms", "--progress", "log", "--progress-interval", "200ms")
	require.Eventually(t, func() bool { return history()-before >= 15 }, time.Minute, 20*time.Millisecond, p.errOut.String())
	require.NoError(t, syscall.Kill(p.cmd.pid, syscall.SIGINT))
	r := p.wait(t, time.Minute)
	requireCode(t, exitInterrupted, r)
	require.Regexp(t, `msg="verify progress" conversations=\d+ total=60 percent=`, r.stderr)
	require.Regexp(t, `resume with: kommo-import verify --run e2e .*--resume`, r.stderr)
	checked := history() - before

	before = history()
	rep, _ := im.verifyReport(t, exitDone, "--run", e2eRun, "--rate", "unlimited", "--reconcile-wait", "100ms", "--resume")
	require.True(t, rep.clean(), "%+v", rep)
	require.EqualValues(t, len(convs), rep.Conversations, "the report covers every conversation")
	require.Positive(t, rep.Resumed)
	require.InDelta(t, checked, rep.Resumed, 1, "those checked before the stop were not read again")
	require.EqualValues(t, int64(len(convs))-rep.Resumed, history()-before, "one request a conversation left")

	// Resuming a finished verification starts a new one.
	rep, _ = im.verifyReport(t, exitDone, "--run", e2eRun, "--rate", "unlimited", "--reconcile-wait", "100ms", "--resume")
	require.Zero(t, rep.Resumed)
	require.EqualValues(t, len(convs), rep.Conversations)
}
