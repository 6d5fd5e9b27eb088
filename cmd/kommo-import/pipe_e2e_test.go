package main_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// TestE2EPipeReaderDiesThenCtrlC is "kommo-import run ... 2>&1 | tee run.log"
// and Ctrl-C, which the terminal sends to the whole process group: tee dies
// first, and kommo-import's next line on stderr meets a closed pipe. The
// import must not die of SIGPIPE (exit 141, no summary, no resume line): the
// soft stop ends with exit 4, and --log-file holds the summary and the
// resume line that stderr could no longer take.
func TestE2EPipeReaderDiesThenCtrlC(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(31, 20, 30)
	logFile := filepath.Join(t.TempDir(), "run.log")
	source := "jsonl:" + ledgertest.WriteJSONL(t, msgs)
	args := []string{"run", "--source", source, "--run", e2eRun,
		"--rate", "unlimited", "--workers", "2", "--reconcile-wait", "300ms",
		"--progress", "log", "--progress-interval", "100ms", "--log-file", logFile}

	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd := im.managed(t, args...)
	cmd.Stdout, cmd.Stderr = pw, pw // 2>&1 | tee
	require.NoError(t, cmd.Start())
	pw.Close()
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted >= 20
	}, 30*time.Second, 10*time.Millisecond, "sending started")

	// tee dies: its end of the pipe closes. A progress line every 100ms
	// meets the closed pipe at once.
	buf := make([]byte, 64<<10)
	_, _ = pr.Read(buf)
	require.NoError(t, pr.Close())
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	log, err := os.ReadFile(logFile)
	require.NoError(t, err)
	require.False(t, ws.Signaled(), "killed by %v; log file:\n%s", ws.Signal(), log)
	require.Equal(t, exitInterrupted, cmd.ProcessState.ExitCode(), "log file:\n%s", log)

	fi, err := os.Stat(logFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	require.Contains(t, string(log), "level=INFO msg=progress", "the log is in the file")
	require.Contains(t, string(log), "stopping: finishing the requests in flight")
	require.Contains(t, string(log), "run e2e (scope "+e2eScope+"): interrupted", "the summary is in the file")
	require.Contains(t, string(log), "Try: resume with: kommo-import run ", "the resume line is in the file")

	r := im.run(t, runArgs(source, "--rate", "unlimited")...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
}

// TestE2EReportIntoAClosedPipe: "kommo-import report ... | head" ends
// quietly when head has had enough, as a process SIGPIPE killed would: no
// "broken pipe" error on stderr, exit 141.
func TestE2EReportIntoAClosedPipe(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(35, 10, 20)
	requireCode(t, exitDone, im.run(t, runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited")...))

	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd := im.managed(t, "report", "--run", e2eRun, "--sent", "--format", "csv")
	var errOut syncBuffer
	cmd.Stdout, cmd.Stderr = pw, &errOut
	require.NoError(t, pr.Close()) // head has gone before the first line
	require.NoError(t, cmd.Start())
	pw.Close()
	_ = cmd.Wait()
	require.Equal(t, 141, cmd.ProcessState.ExitCode(), errOut.String())
	require.Empty(t, errOut.String())
}
