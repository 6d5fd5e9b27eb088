package main_test

// The send path with the real binaries (issue 9): a killed process's
// conversations are free within about a heartbeat, two processes together
// spend the run's rate and no more, in-doubt messages never make a worker
// idle, and the preflight stops a run before it stages anything.
//
// The tests that measure time do not call t.Parallel: Go runs a package's
// sequential tests one after another before it releases the parallel ones,
// so these run on a machine that only they load.

import (
	"context"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// connect opens a connection to the test's database, closed at cleanup.
func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// leasesOf counts the run's conversations leased to the process with the
// given process id (lease owners are "process#worker").
func leasesOf(t *testing.T, conn *pgx.Conn, procID string) int {
	t.Helper()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM kommo_import_conversations
		WHERE run_name = $1 AND split_part(lease_owner, '#', 1) = $2`, e2eRun, procID).Scan(&n))
	return n
}

// started is a kommo-import started in the background.
type started struct {
	cmd         *cmdWait
	out, errOut *syncBuffer
}

// cmdWait waits for a command once, from its own goroutine.
type cmdWait struct {
	pid    int
	exited chan struct{}
	code   int
}

func (im *importer) start(t *testing.T, args ...string) *started {
	t.Helper()
	cmd := im.managed(t, args...)
	s := &started{out: &syncBuffer{}, errOut: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = s.out, s.errOut
	require.NoError(t, cmd.Start())
	s.cmd = &cmdWait{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		s.cmd.code = cmd.ProcessState.ExitCode()
		close(s.cmd.exited)
	}()
	return s
}

func (s *started) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, syscall.Kill(s.cmd.pid, syscall.SIGKILL))
	<-s.cmd.exited
}

// wait waits for the process to end by itself and returns its result.
func (s *started) wait(t *testing.T, within time.Duration) result {
	t.Helper()
	select {
	case <-s.cmd.exited:
	case <-time.After(within):
		t.Fatalf("kommo-import (pid %d) still runs after %s: %s", s.cmd.pid, within, s.errOut.String())
	}
	return result{code: s.cmd.code, stdout: s.out.String(), stderr: s.errOut.String()}
}

func (s *started) running() bool {
	select {
	case <-s.cmd.exited:
		return false
	default:
		return true
	}
}

// processHolding returns the kommo_import_processes id of s, once it has
// registered and holds at least one conversation.
func processHolding(t *testing.T, conn *pgx.Conn, s *started) string {
	t.Helper()
	var procID string
	require.Eventually(t, func() bool {
		require.True(t, s.running(), "pid %d ended before it held a conversation: %s", s.cmd.pid, s.errOut.String())
		err := conn.QueryRow(context.Background(), `SELECT process_id FROM kommo_import_processes
			WHERE run_name = $1 AND pid = $2`, e2eRun, s.cmd.pid).Scan(&procID)
		return err == nil && leasesOf(t, conn, procID) > 0
	}, 30*time.Second, 10*time.Millisecond, "pid %d never held a conversation: %s", s.cmd.pid, s.errOut.String())
	return procID
}

// TestE2EKillRecoveryFreesConversationsWithinAHeartbeat kills one of two
// processes of a run with SIGKILL while it holds conversations: its
// conversations must be free within about a heartbeat (the session's
// advisory lock goes with the process; the survivor's reaper frees them at
// its next beat), status must show the survivor alone, and the survivor
// must finish the run alone, exactly once.
func TestE2EKillRecoveryFreesConversationsWithinAHeartbeat(t *testing.T) {
	s := startSim(t, "--rate", "0", "--latency", "5ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(31, 60, 20)
	require.Greater(t, len(msgs), 500, "the run lasts well beyond the kill at 50/s")
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "50")
	conn := connect(t, im.dbURL)

	survivor := im.start(t, args...)
	victim := im.start(t, args...)
	dead := processHolding(t, conn, victim)
	processHolding(t, conn, survivor)
	// Every worker of the victim (8) busy with a conversation of its own.
	var held int
	require.Eventually(t, func() bool {
		held = leasesOf(t, conn, dead)
		return held >= 6
	}, 10*time.Second, 10*time.Millisecond, "the victim's workers claimed conversations")

	killed := time.Now()
	victim.kill(t)
	var freed time.Duration
	for {
		if leasesOf(t, conn, dead) == 0 {
			freed = time.Since(killed)
			break
		}
		require.Less(t, time.Since(killed), 10*time.Second, "the killed process's conversations are still leased")
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the killed process held %d conversations; all free %s after the kill", held, freed)
	require.LessOrEqual(t, freed, 2500*time.Millisecond, "a killed process's conversations are free within about a heartbeat (1 s)")

	require.True(t, survivor.running(), "the survivor still had work when the other was killed")
	st := im.status(t)
	require.True(t, st.Live, "status after the kill: %+v", st)
	require.EqualValues(t, 1, st.Processes, "only the survivor is live: %+v", st.LiveProcesses)
	require.Len(t, st.LiveProcesses, 1)
	require.Equal(t, survivor.cmd.pid, st.LiveProcesses[0].PID, "the live process is the survivor")

	r := survivor.wait(t, time.Minute)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	require.Equal(t, kimport.OutcomeDone, sum.Outcome)
	require.EqualValues(t, len(msgs), sum.Sent)
	s.requireExact(t, msgs)
	end := im.status(t)
	require.Equal(t, kimport.RunDone, end.State)
	require.False(t, end.Live)
	require.Zero(t, end.Pending+end.Sending+end.Failed)
}

// TestE2EKillingEveryProcessLeavesTheRunInterrupted: with both processes of
// a run killed, status says no process is live and the run is interrupted;
// the same command then finishes it exactly once.
func TestE2EKillingEveryProcessLeavesTheRunInterrupted(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "5ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(32, 40, 20)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "50")
	conn := connect(t, im.dbURL)

	procs := []*started{im.start(t, args...), im.start(t, args...)}
	for _, p := range procs {
		processHolding(t, conn, p)
	}
	// Both show as live: once each has beaten since the other started (on
	// a loaded machine a heartbeat can come late enough for a moment's
	// status to miss one; a process that ended would never show again).
	var live kimport.RunStatus
	require.Eventually(t, func() bool {
		live = im.status(t)
		return live.Live && live.Processes == 2
	}, 15*time.Second, 50*time.Millisecond, "status never showed both processes live (last: %d); running %v %v;\nfirst: %s\nsecond: %s",
		live.Processes, procs[0].running(), procs[1].running(), procs[0].errOut.String(), procs[1].errOut.String())
	for _, p := range procs {
		p.kill(t)
	}
	killed := time.Now()
	var st kimport.RunStatus
	require.Eventually(t, func() bool {
		st = im.status(t)
		return !st.Live
	}, 5*time.Second, 20*time.Millisecond, "status still shows a live process after both were killed")
	t.Logf("status showed no live process %s after the kills", time.Since(killed).Round(time.Millisecond))
	require.Equal(t, kimport.RunInterrupted, st.State)
	require.Zero(t, st.Processes)
	require.Empty(t, st.LiveProcesses)
	require.Less(t, st.Sent, int64(len(msgs)), "the kills left work to do")

	r := im.run(t, args...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
}

// TestE2ETwoProcessesSpendExactlyTheRate: two processes of one run at --rate
// 10 against a simulator with no limit of its own. Together they never put
// more than 10 requests into any second, and they spend the rate: the
// design's schedule gives 10/1.008 = 9.92 messages/s.
func TestE2ETwoProcessesSpendExactlyTheRate(t *testing.T) {
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(33, 24, 10)
	require.Greater(t, len(msgs), 100, "about 10 to 15 seconds at 10/s")
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "10")

	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = im.run(t, args...)
		}()
	}
	wg.Wait()
	for _, r := range results {
		requireCode(t, exitDone, r)
		require.Positive(t, summary(t, r).SentNow, "both processes sent")
	}
	s.requireExact(t, msgs)

	entries := ledgertest.ReadLedger(t, s.ledger)
	first, last := entries[0].ReceivedAt, entries[0].ReceivedAt
	for _, e := range entries {
		if e.ReceivedAt.Before(first) {
			first = e.ReceivedAt
		}
		if e.ReceivedAt.After(last) {
			last = e.ReceivedAt
		}
	}
	span := last.Sub(first)
	rate := float64(len(entries)-1) / span.Seconds()
	st := s.stats(t)
	t.Logf("%d messages in %s: %.3f messages/s (%.1f%% of --rate 10); %d requests, at most %d in any second",
		len(entries), span.Round(time.Millisecond), rate, rate*10, st.Requests, st.MaxRequestsInAny1s)
	// The importers keep --rate as they send; the simulator, another
	// process on a possibly loaded machine, may see one request early. The
	// 99% and the strict maximum over an hour are make soak's and make
	// bench-send's to measure; here, generous floors that hold under load.
	require.LessOrEqual(t, st.MaxRequestsInAny1s, 11, "never more than --rate requests in any second (one of jitter on the way)")
	// 82.6% was seen under make test-under-load (two CPU burners beside).
	require.GreaterOrEqual(t, rate, 7.0, "the two processes together spend at least 70%% of --rate")
}

// TestE2EFaultsFinishWithoutIdling: ~9% mixed faults, accept-then-fail among
// them, with the history showing a message only 300 ms after it was
// accepted. The run finishes by itself, exactly once, and far sooner than a
// design whose worker waits out the reconcile window on each in-doubt
// message would: that costs (in-doubt attempts) x --reconcile-wait /
// --workers at least, while parking the conversation costs only the
// conversations' own chains of waits.
func TestE2EFaultsFinishWithoutIdling(t *testing.T) {
	const (
		workers   = 2
		reconcile = 2 * time.Second
	)
	s := startSim(t, "--rate", "0", "--seed", "9",
		"--faults", "500=0.03,503=0.02,accept-500=0.02,accept-drop=0.01,hang=0.01",
		"--hang", "500ms", "--history-delay", "300ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(34, 60, 14)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "2",
		"--reconcile-wait", reconcile.String(), "--max-attempts", "30")

	began := time.Now()
	r := im.run(t, args...)
	took := time.Since(began)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
	sum := summary(t, r)
	st := s.stats(t)

	// Every new_message request was either the one clean 200 of a message
	// not found in history, or a fault: an in-doubt attempt.
	inDoubt := st.ByEndpoint["new_message"] - (int64(len(msgs)) - sum.InDoubtFound)
	idling := time.Duration(inDoubt) * reconcile / workers
	t.Logf("%d messages in %s; %d in-doubt attempts (faults %v), %d look-ups, %d found in history; idling on each would take at least %s",
		len(msgs), took.Round(time.Millisecond), inDoubt, st.Faults, sum.InDoubt, sum.InDoubtFound, idling)
	require.GreaterOrEqual(t, inDoubt, int64(20), "enough in-doubt attempts for the bound to mean something")
	require.Positive(t, sum.InDoubtFound, "accepted-then-failed messages were found in history, not sent again")
	require.Less(t, took, idling/2, "the run took as long as idling on in-doubt messages would")
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// requireNothingStaged checks that the run staged nothing (or does not exist).
func requireNothingStaged(t *testing.T, im *importer) {
	t.Helper()
	r := im.run(t, "status", "--run", e2eRun, "--json")
	if r.code != exitDone {
		require.Contains(t, r.stderr, "no such run", "status: %d\n%s%s", r.code, r.stdout, r.stderr)
		t.Log("status: no such run")
		return
	}
	st := im.status(t)
	t.Logf("status: run %s, state %s, staged %d", st.Name, st.State, st.Staged)
	require.Zero(t, st.Staged, "%+v", st)
	require.Zero(t, st.Records, "%+v", st)
	require.Zero(t, st.StagedLine, "%+v", st)
}

// TestE2EPreflightStopsBeforeStaging: an API URL where nothing listens is an
// interruption (exit 4) within seconds, naming the URL; an API that refuses
// the signature stops the run for the operator (exit 5). Either way before
// anything is staged.
func TestE2EPreflightStopsBeforeStaging(t *testing.T) {
	t.Parallel()
	msgs := ledgertest.Gen(35, 5, 5)
	src := "jsonl:" + ledgertest.WriteJSONL(t, msgs)

	t.Run("nothing listens", func(t *testing.T) {
		t.Parallel()
		url := "http://" + freePort(t)
		im := &importer{dbURL: pgtest.URL(t), apiURL: url}
		began := time.Now()
		r := im.run(t, runArgs(src, "--rate", "unlimited", "--api-url", url)...)
		took := time.Since(began)
		t.Logf("exit %d after %s: %s", r.code, took.Round(time.Millisecond), strings.TrimSpace(r.stderr))
		requireCode(t, exitInterrupted, r)
		require.Less(t, took, 5*time.Second)
		require.Contains(t, r.stderr, url, "the error names the URL")
		requireNothingStaged(t, im)
	})
	t.Run("another secret", func(t *testing.T) {
		t.Parallel()
		other := startSimSecret(t, "another-secret-of-the-simulator")
		im := &importer{dbURL: pgtest.URL(t), apiURL: other.url}
		r := im.run(t, runArgs(src, "--rate", "unlimited")...)
		t.Logf("exit %d: %s", r.code, strings.TrimSpace(r.stderr))
		requireCode(t, exitStopped, r)
		requireNothingStaged(t, im)
		st := other.stats(t)
		require.Zero(t, st.Accepted)
		require.Zero(t, st.ByEndpoint["new_message"], "no message was sent")
		require.Positive(t, st.RejectedSignature, "the preflight's signature was refused")
	})
}
