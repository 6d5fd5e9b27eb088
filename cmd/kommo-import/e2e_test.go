package main_test

// End-to-end tests with the built binaries: kommo-sim over real HTTP, a real
// PostgreSQL (internal/pgtest), and kommo-import killed, signalled and
// restarted the way an operator's machine would do it. The simulator records a
// repeated msgid as a duplicate, so any blind resend shows in its ledger.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

const (
	e2eScope  = "e2e-channel_e2e-account"
	e2eSecret = "e2e-Secret-7f3c91d2b4a6"
	e2eRun    = "e2e"
	// cmdTimeout bounds one kommo-import invocation, so a hang fails its test
	// with the process's output instead of timing out the whole package.
	cmdTimeout = 3 * time.Minute
)

// Exit codes of kommo-import (cmd/kommo-import/cli/exit.go).
const (
	exitDone        = 0
	exitIncomplete  = 3
	exitInterrupted = 4
	exitStopped     = 5
)

var binDir string

// TestMain builds both binaries once for every test of the package.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kommo-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/",
		"github.com/kommo-import/kommo-import/cmd/kommo-import", "github.com/kommo-import/kommo-import/cmd/kommo-sim")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// simProc is a running kommo-sim, killed at the test's cleanup.
type simProc struct {
	url, ledger string
}

func startSim(t *testing.T, args ...string) *simProc {
	t.Helper()
	return startSimSecret(t, e2eSecret, args...)
}

// startSimSecret starts a simulator that expects another channel secret.
func startSimSecret(t *testing.T, secret string, args ...string) *simProc {
	t.Helper()
	dir := t.TempDir()
	p := &simProc{ledger: filepath.Join(dir, "ledger.jsonl")}
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(filepath.Join(binDir, "kommo-sim"), append([]string{
		"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--scope-id", e2eScope, "--ledger", p.ledger,
	}, args...)...)
	cmd.Env = append(os.Environ(), "KOMMO_CHANNEL_SECRET="+secret)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			p.url = strings.TrimSpace(string(b))
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("kommo-sim did not start: %s", stderr.String())
	return nil
}

// statsErr returns the simulator's counters; it may run outside the test's goroutine.
func (p *simProc) statsErr() (sim.Stats, error) {
	var st sim.Stats
	resp, err := http.Get(p.url + "/_sim/stats")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (p *simProc) stats(t *testing.T) sim.Stats {
	t.Helper()
	st, err := p.statsErr()
	require.NoError(t, err)
	return st
}

// requireExact checks the simulator's ledger against msgs: every message
// exactly once, in order per conversation, the newest of each conversation
// the only loud one; and the simulator counted no duplicate.
func (p *simProc) requireExact(t *testing.T, msgs []ledgertest.Msg) {
	t.Helper()
	ledgertest.Check(t, ledgertest.ReadLedger(t, p.ledger), msgs, ledgertest.Newest(msgs))
	require.Zero(t, p.stats(t).Duplicates, "the simulator saw a msgid twice")
}

// importer runs kommo-import commands against one database and simulator.
type importer struct {
	dbURL, apiURL string
}

func newImporter(t *testing.T, s *simProc) *importer {
	return &importer{dbURL: pgtest.URL(t), apiURL: s.url}
}

// cmd makes a kommo-import command; the caller starts it and must make sure
// it ends (managed does).
func (im *importer) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "kommo-import"), args...)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+im.dbURL, "KOMMO_API_URL="+im.apiURL, "KOMMO_SCOPE_ID="+e2eScope, "KOMMO_CHANNEL_SECRET="+e2eSecret)
	return cmd
}

// managed makes a kommo-import command killed after cmdTimeout or at the
// test's cleanup, whichever comes first, if it is still running then.
func (im *importer) managed(t *testing.T, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kommo-import"), args...)
	cmd.Env = im.cmd().Env
	t.Cleanup(cancel) // kills it if it still runs
	return cmd
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
	err            error // not an exit status: the command could not run
}

// run runs a command to its end. It is safe outside the test's goroutine;
// check the result there with requireCode.
func (im *importer) run(t *testing.T, args ...string) result {
	cmd := im.managed(t, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = nil
	}
	if cmd.ProcessState == nil {
		return result{code: -1, err: err}
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String(), err: err}
}

func requireCode(t *testing.T, want int, r result) {
	t.Helper()
	require.NoError(t, r.err)
	require.Equal(t, want, r.code, "exit code\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
}

func summary(t *testing.T, r result) kimport.Summary {
	t.Helper()
	var s kimport.Summary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return s
}

func runArgs(source string, extra ...string) []string {
	return append([]string{"run", "--source", source, "--run", e2eRun, "--progress", "none", "--json", "--reconcile-wait", "300ms"}, extra...)
}

// status is `kommo-import status --json` of the test's run.
func (im *importer) status(t *testing.T) kimport.RunStatus {
	t.Helper()
	r := im.run(t, "status", "--run", e2eRun, "--json")
	requireCode(t, exitDone, r)
	var st kimport.RunStatus
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	return st
}

// syncBuffer is a bytes.Buffer a process may write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The valid records of testdata's messy exports (sources/testdata/want-messy-*.json
// lists them by line); everything else in those files is a bad record or an
// exact duplicate.
var (
	messyJSONLValid = []ledgertest.Msg{
		{Conv: "conv-anna-001", ID: "j-01", Msec: 1709284502000},
		{Conv: "conv-anna-001", ID: "j-02", Msec: 1709284600000},
		{Conv: "conv-anna-001", ID: "j-14", Msec: 1709285000000},
		{Conv: "conv-zed", ID: "j-19", Msec: 1709285100000},
		{Conv: "conv-last", ID: "j-20", Msec: 1709285200000},
	}
	messyCSVValid = []ledgertest.Msg{
		{Conv: "conv-anna-001", ID: "m-0001", Msec: 1709284502123},
		{Conv: "conv-anna-001", ID: "m-0002", Msec: 1709284665000},
		{Conv: "conv-boris-002", ID: "m-0005", Msec: 1709388093000},
		{Conv: "conv-boris-002", ID: "m-0006", Msec: 1709388125000},
		{Conv: "conv-chen-003", ID: "m-0021", Msec: 1709626700000},
		{Conv: "conv-chen-003", ID: "m-0025", Msec: 1709627100000},
	}
)

func TestE2EMessyDataDeliversEveryValidMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		source   string
		valid    []ledgertest.Msg
		rejected int
	}{
		{"jsonl:../../testdata/messages-messy.jsonl", messyJSONLValid, 12},
		{"csv:../../testdata/messages-messy.csv", messyCSVValid, 19},
	} {
		t.Run(filepath.Ext(tc.source)[1:], func(t *testing.T) {
			t.Parallel()
			s := startSim(t, "--rate", "0")
			im := newImporter(t, s)
			r := im.run(t, runArgs(tc.source, "--rate", "unlimited")...)
			requireCode(t, exitIncomplete, r)
			sum := summary(t, r)
			require.Equal(t, kimport.OutcomeIncomplete, sum.Outcome)
			require.EqualValues(t, tc.rejected, sum.Rejected)
			require.EqualValues(t, len(tc.valid), sum.Sent)
			require.EqualValues(t, len(tc.valid), sum.SentNow)
			require.Zero(t, sum.Failed)
			require.Zero(t, sum.Pending)
			require.Contains(t, r.stderr, "kommo-import report --run e2e", "the operator is told how to see the rejects")
			s.requireExact(t, tc.valid)

			rep := im.run(t, "report", "--run", e2eRun, "--format", "jsonl")
			requireCode(t, exitIncomplete, rep)
			require.Equal(t, tc.rejected, strings.Count(rep.stdout, "\n"), rep.stdout)

			// Running the same command again sends nothing and says the same.
			again := im.run(t, runArgs(tc.source, "--rate", "unlimited")...)
			requireCode(t, exitIncomplete, again)
			require.Zero(t, summary(t, again).SentNow)
			s.requireExact(t, tc.valid)
		})
	}
}

// TestE2EMessyVolume mixes bad records, exact duplicates and conflicting
// repeats of a msgid into a generated history of 40 conversations.
func TestE2EMessyVolume(t *testing.T) {
	t.Parallel()
	msgs := ledgertest.Gen(20, 40, 30)
	path := ledgertest.WriteJSONL(t, msgs)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
	lines[len(lines)-1] += "\n"

	r := rand.New(rand.NewPCG(20, 3))
	bad := []string{
		`{"msgid": "broken", "conversation_id": ` + "\n",
		`{"msgid": "no-conv", "timestamp": 1709284502, "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}` + "\n",
		`{"event_type": "edit_message", "payload": {"timestamp": 1709284502, "msgid": "edit", "conversation_id": "conv-000", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}}` + "\n",
		`{"timestamp": "soon", "msgid": "bad-ts", "conversation_id": "conv-001", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}` + "\n",
		`[1, 2, 3]` + "\n",
		`{"timestamp": 1709284502, "msgid": "no-message", "conversation_id": "conv-002", "sender": {"id": "a", "name": "b"}}` + "\n",
	}
	var out []string
	dups, rejects := 0, 0
	for i, line := range lines {
		out = append(out, line)
		switch {
		case i%97 == 13: // an exact repeat: a duplicate, not a reject
			out = append(out, line)
			dups++
		case i%89 == 7: // the same msgid with other content: a reject
			out = append(out, strings.Replace(line, `"text":"hello from`, `"text":"edited: hello from`, 1))
			rejects++
		case r.IntN(60) == 0:
			out = append(out, bad[r.IntN(len(bad))])
			rejects++
		}
	}
	require.Positive(t, dups)
	require.Greater(t, rejects, 5)
	messy := filepath.Join(t.TempDir(), "messy.jsonl")
	require.NoError(t, os.WriteFile(messy, []byte(strings.Join(out, "")), 0o600))

	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	res := im.run(t, runArgs("jsonl:"+messy, "--rate", "unlimited")...)
	requireCode(t, exitIncomplete, res)
	sum := summary(t, res)
	require.EqualValues(t, rejects, sum.Rejected)
	require.EqualValues(t, dups, sum.Duplicates)
	require.EqualValues(t, len(msgs), sum.Sent)
	s.requireExact(t, msgs)
}

// phase says where a run stands, from the database, and how many of its
// messages are in doubt (marked sending: the request may have landed).
func phase(t *testing.T, dbURL string) (string, int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var done bool
	var inDoubt int
	err = conn.QueryRow(ctx, `SELECT staging_done,
		(SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND state = 'sending')
		FROM kommo_import_runs WHERE name = $1`, e2eRun).Scan(&done, &inDoubt)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "42P01": // no run, or no schema yet
		return "start", 0
	case errors.As(err, &pgErr) && pgErr.Code == "40P01":
		// This read and the first process's migrations took their locks
		// in other orders, and PostgreSQL cancelled this read (the
		// migration, cancelled instead, is tried again).
		return "start", 0
	case err != nil:
		require.NoError(t, err)
	case done:
		return "sending", inDoubt
	}
	return "staging", inDoubt
}

// sleepUnless sleeps for d or until done is closed.
func sleepUnless(done <-chan struct{}, d time.Duration) {
	select {
	case <-done:
	case <-time.After(d):
	}
}

// TestE2ECrashAndRestart kills the importer with SIGKILL at random moments,
// during staging and sending, and restarts it with the same command until it
// finishes; the simulator must have received exactly what an uninterrupted
// run sends.
func TestE2ECrashAndRestart(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "5ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(21, 50, 60)
	require.Greater(t, len(msgs), 1400)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "6", "--stage-batch", "3")

	r := rand.New(rand.NewPCG(21, 2))
	kills := map[string]int{}
	total, inDoubtKills := 0, 0
	for total < 30 && (total < 16 || kills["sending"] < 12) {
		cmd := im.managed(t, args...)
		var errOut syncBuffer
		cmd.Stderr = &errOut
		require.NoError(t, cmd.Start())
		var waitErr error
		exited := make(chan struct{})
		go func() { waitErr = cmd.Wait(); close(exited) }()
		if p, _ := phase(t, im.dbURL); p != "sending" && kills["staging"] < 4 {
			// Staging takes a few hundred milliseconds in batches of 3. The
			// run is made only after the preflight, which a loaded machine
			// slows past any fixed sleep (under make test-under-load 20 of
			// 30 kills landed before it): wait for the run, then a moment.
			require.Eventually(t, func() bool {
				select {
				case <-exited:
					return true
				default:
				}
				p, _ := phase(t, im.dbURL)
				return p != "start"
			}, 30*time.Second, 5*time.Millisecond, "the importer made no run: %s", errOut.String())
			sleepUnless(exited, time.Duration(r.IntN(150))*time.Millisecond)
		} else {
			// Kill mid-send: once this process has delivered something
			// (a restart first waits for the killed one's heartbeat to
			// look stale), a moment later.
			before := s.stats(t).Accepted
			require.Eventually(t, func() bool {
				select {
				case <-exited:
					return true
				default:
				}
				st, err := s.statsErr()
				return err == nil && st.Accepted > before
			}, 30*time.Second, 2*time.Millisecond, "the restarted importer sent nothing: %s", errOut.String())
			sleepUnless(exited, time.Duration(r.IntN(200))*time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if cmd.ProcessState.Exited() {
			// It finished before the kill: it must have finished well.
			require.NoError(t, waitErr, "exit %d before the kill: %s", cmd.ProcessState.ExitCode(), errOut.String())
			break
		}
		total++
		p, inDoubt := phase(t, im.dbURL)
		kills[p]++
		if inDoubt > 0 {
			inDoubtKills++
		}
	}
	delivered := s.stats(t).Accepted
	t.Logf("%d kills: %v (the phase the run was in when killed), %d of them with messages in doubt; %d of %d messages delivered by then",
		total, kills, inDoubtKills, delivered, len(msgs))
	require.GreaterOrEqual(t, total, 15, "the importer was killed often enough for the test to mean something")
	require.GreaterOrEqual(t, kills["staging"], 2, "some kills landed while staging")
	require.GreaterOrEqual(t, kills["sending"], 10, "many kills landed while sending")
	require.GreaterOrEqual(t, inDoubtKills, 3, "some kills landed with a request in flight")
	require.Less(t, delivered, int64(len(msgs)), "the final run has work left")

	final := im.run(t, args...)
	requireCode(t, exitDone, final)
	require.EqualValues(t, len(msgs), summary(t, final).Sent)
	s.requireExact(t, msgs)
	st := im.status(t)
	require.Equal(t, kimport.RunDone, st.State)
	require.Zero(t, st.Sending+st.Pending+st.Failed)
}

func TestE2EFaults(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--seed", "5",
		"--faults", "500=0.03,503=0.03,429=0.02,hang=0.01,accept-500=0.03,accept-drop=0.02",
		"--fault-retry-after", "200ms", "--hang", "3s", "--history-delay", "200ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(22, 25, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--request-timeout", "1s",
		"--reconcile-wait", "500ms", "--max-attempts", "20")
	r := im.run(t, args...)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	require.Positive(t, sum.InDoubtFound, "accepted-then-failed requests were found in history, not resent")
	require.Positive(t, sum.Retries)
	s.requireExact(t, msgs)
	st := s.stats(t)
	for _, kind := range []string{"500", "503", "429", "hang", "accept-500", "accept-drop"} {
		require.Positive(t, st.Faults[kind], "fault %s was injected", kind)
	}
}

func TestE2ETwoProcessesShareTheRunAndItsRate(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "10")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(23, 20, 10)
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
	sent := 0
	for _, r := range results {
		requireCode(t, exitDone, r)
		now := int(summary(t, r).SentNow)
		require.Positive(t, now, "both processes worked the run")
		sent += now
	}
	require.Equal(t, len(msgs), sent)
	s.requireExact(t, msgs)
	st := s.stats(t)
	require.Zero(t, st.RateLimited, "together the processes kept to the run's rate")
	// Each process spaces its requests at its share (5/s, burst 1), but the
	// time from its limiter to the simulator varies by a few milliseconds,
	// so a one-second window may catch one extra request of each process.
	// Two processes each taking the whole rate would show about 20.
	require.LessOrEqual(t, st.MaxRequestsInAny1s, 10+len(results))
}

// TestE2ERateHoldsForAMinute sends at 5 requests/s for about a minute against a
// simulator enforcing 5/s (default burst): it must never be rate-limited.
func TestE2ERateHoldsForAMinute(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "5")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(24, 30, 19)
	require.Greater(t, len(msgs), 250)
	r := im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "5")...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
	st := s.stats(t)
	require.Zero(t, st.RateLimited)
	require.LessOrEqual(t, st.MaxRequestsInAny1s, 6)
	require.Zero(t, summary(t, r).RateLimited)
}

func TestE2ESignalStopsSoftlyAndResumes(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(25, 20, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "4")

	cmd := im.managed(t, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted >= 30
	}, 30*time.Second, 10*time.Millisecond, "sending started: %s", errOut.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	stopped := result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
	requireCode(t, exitInterrupted, stopped)
	require.Contains(t, stopped.stderr, "resume with: kommo-import run")
	sum := summary(t, stopped)
	require.Equal(t, kimport.OutcomeInterrupted, sum.Outcome)
	require.Zero(t, sum.Sending, "a soft stop leaves nothing in doubt")
	require.Less(t, int(sum.Sent), len(msgs))
	require.EqualValues(t, s.stats(t).Accepted, sum.Sent, "every accepted message was checkpointed as sent")

	st := im.status(t)
	require.Zero(t, st.Sending)
	require.Equal(t, sum.Sent, st.Sent)

	r := im.run(t, args...)
	requireCode(t, exitDone, r)
	require.Zero(t, summary(t, r).InDoubt, "nothing had to be looked up")
	s.requireExact(t, msgs)
}

// TestE2ESecondSignalStopsAtOnce: a second SIGINT does not wait for anything,
// and what it leaves behind resumes to an exact result.
func TestE2ESecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "300ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(27, 10, 20)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "4")

	cmd := im.managed(t, args...)
	var errOut syncBuffer
	cmd.Stderr = &errOut
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted >= 5
	}, 30*time.Second, 10*time.Millisecond, "sending started: %s", errOut.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	require.NotEqual(t, exitDone, cmd.ProcessState.ExitCode(), errOut.String())

	r := im.run(t, args...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
}

// TestE2EResync imports an export, then a larger export of the same history:
// the second run sends only the new messages, and a conversation gets a new
// loud message only when the new export has a newer message for it.
func TestE2EResync(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	all := ledgertest.Gen(28, 15, 20)
	// The first export lacks the newest message of every other conversation
	// and a few older ones.
	newest := ledgertest.Newest(all)
	var first, later []ledgertest.Msg
	convIndex := map[string]int{}
	for _, m := range all {
		if _, ok := convIndex[m.Conv]; !ok {
			convIndex[m.Conv] = len(convIndex)
		}
		if (newest[m.Conv] == m.ID && convIndex[m.Conv]%2 == 0) || strings.HasSuffix(m.ID, "3") {
			later = append(later, m)
			continue
		}
		first = append(first, m)
	}
	require.NotEmpty(t, later)
	r1 := im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, first), "--run", "first", "--progress", "none", "--json", "--rate", "unlimited")
	requireCode(t, exitDone, r1)
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), first, ledgertest.Newest(first))

	r2 := im.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, all), "--run", "second", "--progress", "none", "--json", "--rate", "unlimited")
	requireCode(t, exitDone, r2)
	sum := summary(t, r2)
	require.EqualValues(t, len(later), sum.SentNow, "only the new messages were sent")
	require.EqualValues(t, len(first), sum.KnownSent)

	entries := ledgertest.ReadLedger(t, s.ledger)
	require.Len(t, entries, len(all))
	seen := map[string]bool{}
	loud := map[string][]string{}
	lastMsec := map[string]int64{}
	for i, e := range entries {
		require.False(t, e.Duplicate, e.MsgID)
		require.False(t, seen[e.MsgID], "%s sent twice", e.MsgID)
		seen[e.MsgID] = true
		if !e.Silent {
			loud[e.ConversationID] = append(loud[e.ConversationID], e.MsgID)
		}
		if i >= len(first) {
			// The second run's messages: loud only if it is the newest of all.
			require.Equal(t, newest[e.ConversationID] == e.MsgID, !e.Silent, "silent flag of %s", e.MsgID)
			require.Greater(t, e.MsecTimestamp, lastMsec[e.ConversationID], "out of order in %s at %s", e.ConversationID, e.MsgID)
			lastMsec[e.ConversationID] = e.MsecTimestamp
		}
	}
	firstNewest := ledgertest.Newest(first)
	for conv, id := range newest {
		want := []string{id}
		if prev, ok := firstNewest[conv]; ok && prev != id {
			want = []string{prev, id} // one loud message per run that had the newest
		}
		require.Equal(t, want, loud[conv], "loud messages of %s", conv)
	}
}

func TestE2ESecretNeverLeaks(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms", "--faults", "500=0.2,accept-500=0.05", "--seed", "3")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(26, 5, 10)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--log-level", "debug", "--max-attempts", "30")

	cmd := im.managed(t, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	// Right after the start /proc may show the process before its exec
	// is visible there: read until the command line appears.
	var cmdline, environ []byte
	for deadline := time.Now().Add(2 * time.Second); len(cmdline) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		environ, _ = os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	}
	require.Contains(t, string(environ), e2eSecret, "the check below would find the secret if it were there")
	require.NoError(t, cmd.Wait(), errOut.String())
	s.requireExact(t, msgs)

	status := im.run(t, "status", "--run", e2eRun, "--json")
	runs := im.run(t, "runs")
	report := im.run(t, "report", "--run", e2eRun, "--format", "jsonl")
	// A simulator with another secret refuses every signature: the error
	// that stops the run must not quote the secret either.
	other := startSimSecret(t, "another-secret-of-the-simulator")
	wrong := &importer{dbURL: im.dbURL, apiURL: other.url}
	one := filepath.Join(t.TempDir(), "one.jsonl")
	require.NoError(t, os.WriteFile(one, []byte(`{"timestamp": 1709284502, "msgid": "refused-1", "conversation_id": "c-refused", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}`+"\n"), 0o600))
	refused := wrong.run(t, "run", "--source", "jsonl:"+one, "--run", "refused",
		"--progress", "none", "--log-level", "debug", "--rate", "unlimited")
	require.NotEqual(t, exitDone, refused.code, refused.stderr)
	require.Zero(t, other.stats(t).Accepted)
	for what, text := range map[string]string{
		"command line": string(cmdline), "stdout": out.String(), "stderr": errOut.String(),
		"status": status.stdout + status.stderr, "runs": runs.stdout + runs.stderr, "report": report.stdout + report.stderr,
		"refused run": refused.stdout + refused.stderr, "database": dumpDatabase(t, im.dbURL),
	} {
		if what != "report" { // empty: the run had nothing to report
			require.NotEmpty(t, text, what)
		}
		require.NotContains(t, text, e2eSecret, "the channel secret leaked into the %s", what)
		require.NotContains(t, text, fmt.Sprintf("%x", e2eSecret), "the channel secret leaked into the %s, hex-encoded", what)
	}
}

// dumpDatabase returns every row of every kommo_import table as text (a bytea
// column prints as hex).
func dumpDatabase(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE tablename LIKE 'kommo\_import\_%'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	var b strings.Builder
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, s := range texts {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
