package main_test

// End-to-end tests with the built binaries: kommo-sim over real HTTP, a real
// PostgreSQL (internal/pgtest), and kommo-import killed, signalled and
// restarted the way an operator's machine would do it.

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
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

const (
	e2eScope  = "e2e-channel_e2e-account"
	e2eSecret = "e2e-Secret-7f3c91d2b4a6"
)

var binDir string

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
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// simProc is a running kommo-sim.
type simProc struct {
	url, ledger string
}

func startSim(t *testing.T, args ...string) *simProc {
	t.Helper()
	dir := t.TempDir()
	p := &simProc{ledger: filepath.Join(dir, "ledger.jsonl")}
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(filepath.Join(binDir, "kommo-sim"), append([]string{
		"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--scope-id", e2eScope, "--ledger", p.ledger,
	}, args...)...)
	cmd.Env = append(os.Environ(), "KOMMO_CHANNEL_SECRET="+e2eSecret)
	var stderr bytes.Buffer
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

func (p *simProc) stats(t *testing.T) sim.Stats {
	t.Helper()
	resp, err := http.Get(p.url + "/_sim/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st sim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// importer runs kommo-import commands against one database and simulator.
type importer struct {
	dbURL, apiURL string
}

func (im *importer) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(binDir, "kommo-import"), args...)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+im.dbURL, "KOMMO_API_URL="+im.apiURL, "KOMMO_SCOPE_ID="+e2eScope, "KOMMO_CHANNEL_SECRET="+e2eSecret)
	return cmd
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
}

func (im *importer) run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := im.cmd(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("kommo-import %v: %v", args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

func summary(t *testing.T, r result) map[string]any {
	t.Helper()
	var s map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	return s
}

func runArgs(source string, extra ...string) []string {
	return append([]string{"run", "--source", source, "--run", "e2e", "--progress", "none", "--json", "--reconcile-wait", "300ms"}, extra...)
}

func TestE2EMessyDataDeliversEveryValidMessage(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := &importer{dbURL: pgtest.URL(t), apiURL: s.url}
	r := im.run(t, runArgs("jsonl:../../testdata/messages-messy.jsonl", "--rate", "-1")...)
	require.Equal(t, 3, r.code, "rejects make the run incomplete: %s", r.stderr)
	sum := summary(t, r)
	require.EqualValues(t, 12, sum["rejected"])
	require.EqualValues(t, 5, sum["sent"])
	require.Contains(t, r.stderr, "kommo-import report --run e2e")

	// The valid records of the messy file, by their msgids and timestamps.
	entries := ledgertest.ReadLedger(t, s.ledger)
	var want []ledgertest.Msg
	for _, e := range entries {
		want = append(want, ledgertest.Msg{Conv: e.ConversationID, ID: e.MsgID, Msec: e.MsecTimestamp})
	}
	require.Len(t, want, 5)
	ledgertest.Check(t, entries, want, ledgertest.Newest(want))

	rep := im.run(t, "report", "--run", "e2e", "--format", "jsonl")
	require.Equal(t, 3, rep.code)
	require.Equal(t, 12, strings.Count(rep.stdout, "\n"), rep.stdout)
}

// TestE2ECrashAndRestart kills the importer with SIGKILL at random moments,
// during staging and sending, and restarts it with the same command until it
// finishes. The simulator records a repeated msgid as a duplicate, so any
// blind resend would show in the ledger.
func TestE2ECrashAndRestart(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "5ms")
	dbURL := pgtest.URL(t)
	im := &importer{dbURL: dbURL, apiURL: s.url}
	msgs := ledgertest.Gen(21, 40, 60)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "-1", "--workers", "6", "--stage-batch", "5")

	r := rand.New(rand.NewPCG(21, 2))
	kills, duringStaging := 0, 0
	for kills < 16 {
		cmd := im.cmd(args...)
		require.NoError(t, cmd.Start())
		// Early kills land in staging; later ones mid-send.
		delay := 30 + r.IntN(120+40*kills)
		if kills < 4 {
			delay = 60 + r.IntN(60)
		}
		time.Sleep(time.Duration(delay) * time.Millisecond)
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if err == nil || (errors.As(err, &exit) && exit.ExitCode() >= 0) {
			break // it finished before the kill
		}
		kills++
		if !stagingDone(t, dbURL) {
			duringStaging++
		}
	}
	t.Logf("%d kills, %d of them while staging", kills, duringStaging)
	require.GreaterOrEqual(t, kills, 10, "the importer was killed often enough for the test to mean something")
	require.Positive(t, duringStaging, "some kills landed while staging")
	require.GreaterOrEqual(t, kills-duringStaging, 5, "some kills landed while sending")

	final := im.run(t, args...)
	require.Equal(t, 0, final.code, final.stderr)
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, ledgertest.Newest(msgs))
	require.Zero(t, s.stats(t).Duplicates)
}

func stagingDone(t *testing.T, dbURL string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var done bool
	err = conn.QueryRow(ctx, `SELECT staging_done FROM kommo_import_runs WHERE name = 'e2e'`).Scan(&done)
	if errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	require.NoError(t, err)
	return done
}

func TestE2EFaults(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--seed", "5",
		"--faults", "500=0.03,503=0.03,429=0.02,hang=0.01,accept-500=0.03,accept-drop=0.02",
		"--fault-retry-after", "200ms", "--hang", "5s", "--history-delay", "200ms")
	im := &importer{dbURL: pgtest.URL(t), apiURL: s.url}
	msgs := ledgertest.Gen(22, 25, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "-1", "--request-timeout", "1s",
		"--reconcile-wait", "500ms", "--max-attempts", "20")
	r := im.run(t, args...)
	require.Equal(t, 0, r.code, r.stderr)
	sum := summary(t, r)
	require.Positive(t, sum["in_doubt_found"], "accepted-then-failed requests were found in history, not resent")
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, ledgertest.Newest(msgs))
	st := s.stats(t)
	require.Zero(t, st.Duplicates)
	require.Positive(t, st.Faults["accept-drop"]+st.Faults["accept-500"])
}

func TestE2ETwoProcessesShareTheRunAndItsRate(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "10")
	im := &importer{dbURL: pgtest.URL(t), apiURL: s.url}
	msgs := ledgertest.Gen(23, 20, 10)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "10")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = im.run(t, args...)
		}()
	}
	wg.Wait()
	for _, r := range results {
		require.Equal(t, 0, r.code, r.stderr)
	}
	sent := int(summary(t, results[0])["sent_now"].(float64) + summary(t, results[1])["sent_now"].(float64))
	require.Equal(t, len(msgs), sent)
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, ledgertest.Newest(msgs))
	st := s.stats(t)
	require.Zero(t, st.RateLimited, "together the processes kept to the run's rate")
	require.LessOrEqual(t, st.MaxRequestsInAny1s, 11)
}

// TestE2ERateHoldsForAMinute sends at 5 requests/s for about a minute against a
// simulator enforcing 5/s: it must never be rate-limited.
func TestE2ERateHoldsForAMinute(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "5")
	im := &importer{dbURL: pgtest.URL(t), apiURL: s.url}
	msgs := ledgertest.Gen(24, 30, 19)
	require.Greater(t, len(msgs), 250)
	r := im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "5")...)
	require.Equal(t, 0, r.code, r.stderr)
	st := s.stats(t)
	require.Zero(t, st.RateLimited)
	require.LessOrEqual(t, st.MaxRequestsInAny1s, 6)
	require.EqualValues(t, len(msgs), st.Accepted)
}

func TestE2ESignalStopsSoftlyAndResumes(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	dbURL := pgtest.URL(t)
	im := &importer{dbURL: dbURL, apiURL: s.url}
	msgs := ledgertest.Gen(25, 20, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "-1", "--workers", "4")

	cmd := im.cmd(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return len(ledgertest.ReadLedger(t, s.ledger)) >= 30 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	require.Equal(t, 4, cmd.ProcessState.ExitCode(), errOut.String())
	require.Contains(t, errOut.String(), "resume with: kommo-import run")
	sum := summary(t, result{stdout: out.String(), stderr: errOut.String()})
	require.EqualValues(t, 0, sum["sending"], "a soft stop leaves nothing in doubt")
	require.Less(t, int(sum["sent"].(float64)), len(msgs))

	st := im.run(t, "status", "--run", "e2e", "--json")
	require.Equal(t, 0, st.code)
	require.Contains(t, st.stdout, `"sending": 0`)

	r := im.run(t, args...)
	require.Equal(t, 0, r.code, r.stderr)
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, ledgertest.Newest(msgs))
}

func TestE2ESecretNeverLeaks(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms", "--faults", "500=0.2", "--seed", "3")
	dbURL := pgtest.URL(t)
	im := &importer{dbURL: dbURL, apiURL: s.url}
	msgs := ledgertest.Gen(26, 5, 10)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "-1", "--log-level", "debug", "--max-attempts", "30")

	cmd := im.cmd(args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
	require.NoError(t, err)
	environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
	require.Contains(t, string(environ), e2eSecret, "the check below would find the secret if it were there")
	require.NoError(t, cmd.Wait(), errOut.String())

	status := im.run(t, "status", "--run", "e2e", "--json")
	runs := im.run(t, "runs")
	report := im.run(t, "report", "--run", "e2e", "--format", "jsonl")
	for what, text := range map[string]string{
		"command line": string(cmdline), "stdout": out.String(), "stderr": errOut.String(),
		"status": status.stdout + status.stderr, "runs": runs.stdout, "report": report.stdout + report.stderr,
		"database": dumpDatabase(t, dbURL),
	} {
		require.NotContains(t, what+": "+text, e2eSecret, "the channel secret leaked into the %s", what)
	}
}

// dumpDatabase returns every row of every kommo_import table as text.
func dumpDatabase(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE tablename LIKE 'kommo_import%'`)
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
	// bytea columns print as hex: look for the secret's hex form too.
	return b.String() + fmt.Sprintf("%x", b.String())
}
