package main_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// TestE2EAFrozenProcessNeverSendsAgain: two processes on one run, one of
// them frozen (SIGSTOP: a GC or VM pause, a stopped container) longer than
// its liveness allows, three times. The other takes its conversations over,
// and an in-doubt message among them is absent from history and sent; when
// the frozen one is thawed it must not send that message again, nor anything
// else of a conversation it lost. Before the fencing, a thawed process sent
// its in-doubt messages at once (4 to 7 duplicates a run at --rate
// unlimited).
func TestE2EAFrozenProcessNeverSendsAgain(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "100ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(41, 500, 12)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "12", "--request-timeout", "2s")
	frozen := im.start(t, append(args, "--log-level", "debug")...)
	other := im.start(t, append(args, "--log-level", "debug")...)
	conn := connect(t, im.dbURL)
	processHolding(t, conn, frozen)
	for i := range 3 {
		time.Sleep(700 * time.Millisecond)
		if !frozen.running() {
			break
		}
		require.NoError(t, syscall.Kill(frozen.cmd.pid, syscall.SIGSTOP))
		time.Sleep(6 * time.Second) // the heartbeat allows 4
		if err := syscall.Kill(frozen.cmd.pid, syscall.SIGCONT); err != nil {
			require.ErrorIs(t, err, syscall.ESRCH) // it was killed meanwhile (the test's deadline)
		}
		t.Logf("freeze %d done; %d messages in the ledger", i+1, len(ledgertest.ReadLedger(t, s.ledger)))
	}
	for _, p := range []*started{frozen, other} {
		r := p.wait(t, 2*time.Minute)
		require.Contains(t, []int{exitDone, exitInterrupted}, r.code, r.stderr)
	}
	// Whatever is left (a lost lease can end a process's part early) is
	// finished by the same command.
	requireCode(t, exitDone, im.run(t, args...))
	st := s.stats(t)
	t.Logf("%d messages, %d requests, %d duplicates", len(msgs), st.Requests, st.Duplicates)
	if st.Duplicates > 0 {
		seen := map[string]int{}
		for _, e := range ledgertest.ReadLedger(t, s.ledger) {
			seen[e.MsgID]++
		}
		for _, e := range ledgertest.ReadLedger(t, s.ledger) {
			if seen[e.MsgID] > 1 {
				t.Logf("duplicate %s received at %s", e.MsgID, e.ReceivedAt.Format("15:04:05.000"))
				for _, p := range []*started{frozen, other} {
					for _, l := range strings.Split(p.errOut.String(), "\n") {
						if strings.Contains(l, e.MsgID) {
							t.Logf("  pid %d logged: %s", p.cmd.pid, l)
						}
					}
				}
			}
		}
	}
	s.requireExact(t, msgs)
}

// TestE2EADatabaseCrashKeepsTheRate: PostgreSQL crashes (an immediate
// shutdown: a power cut, an OOM kill) and comes back, three times, while two
// processes send at --rate 7 against an API that allows 7/s. The scope's
// schedule must survive the crash: before, it lived in an unlogged table
// that crash recovery empties, the processes started a fresh schedule while
// slots reserved before the crash were still being used, and the API
// answered 429 (a 5-minute pause at Kommo; a block if it repeats).
func TestE2EADatabaseCrashKeepsTheRate(t *testing.T) {
	t.Parallel()
	dir, err := tempShortDir(t)
	require.NoError(t, err)
	pgsh := filepath.Join("..", "..", "scripts", "pg.sh")
	// A commit must survive the crash, as on any real server: the test
	// clusters' asynchronous commit would lose the last ones.
	start := exec.Command(pgsh, "start", dir)
	start.Env = append(os.Environ(), "PG_SYNC_COMMIT=on")
	out, err := start.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("pg.sh start: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = exec.Command(pgsh, "stop", dir).Run() })
	s := startSim(t, "--rate", "7")
	im := &importer{dbURL: strings.TrimSpace(string(out)), apiURL: s.url}
	msgs := ledgertest.Gen(43, 40, 6)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "7", "--workers", "8")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = im.run(t, args...)
		}()
	}
	for i := range 3 {
		time.Sleep(5 * time.Second)
		require.NoError(t, exec.Command(pgsh, "crash", dir).Run(), "crash %d", i+1)
	}
	wg.Wait()
	for _, r := range results {
		requireCode(t, exitDone, r)
	}
	s.requireExact(t, msgs)
	st := s.stats(t)
	t.Logf("%d messages through 3 crashes: %d requests, %d answered 429, at most %d in any second", len(msgs), st.Requests, st.RateLimited, st.MaxRequestsInAny1s)
	require.Zero(t, st.RateLimited, "the API's rate was kept through the crashes")
}

// tempShortDir is a fresh directory with a path short enough for a
// PostgreSQL socket.
func tempShortDir(t *testing.T) (string, error) {
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "kpg")
	if err != nil {
		return "", err
	}
	// The server runs as another user when the tests run as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "c"), nil
}
