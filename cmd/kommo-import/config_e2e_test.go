package main_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// TestE2EConfigFileResumeCommand: a run started with --config FILE is
// resumed by naming the file: the "Try: resume with:" line of the
// interrupted run and status (from another directory) both say
// "kommo-import run --config /abs/FILE", and that line, run as printed,
// finishes the import exactly.
func TestE2EConfigFileResumeCommand(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	im := newImporter(t, s)
	msgs := ledgertest.Gen(33, 20, 30)
	dir := t.TempDir()
	data := ledgertest.WriteJSONL(t, msgs)
	require.NoError(t, os.Rename(data, filepath.Join(dir, "history.jsonl")))
	cfg := filepath.Join(dir, "import.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
source = "jsonl:history.jsonl"   # beside this file
rate = "unlimited"
reconcile-wait = "300ms"
progress = "none"

[run]
workers = 2
`), 0o600))

	// The command runs from another directory, naming the file relative to it.
	elsewhere := t.TempDir()
	rel, err := filepath.Rel(elsewhere, cfg)
	require.NoError(t, err)
	cmd := im.managed(t, "run", "--config", rel)
	cmd.Dir = elsewhere
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted >= 20
	}, 30*time.Second, 10*time.Millisecond, "sending started: %s", errOut.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	requireCode(t, exitInterrupted, result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()})

	abs := cfg
	line := regexp.MustCompile(`Try: resume with: (kommo-import run --config \S+ --run \S+)\n`).FindStringSubmatch(errOut.String())
	require.NotNil(t, line, errOut.String())
	require.Equal(t, "kommo-import run --config "+abs, line[1][:len("kommo-import run --config "+abs)])

	r := im.run(t, "status")
	requireCode(t, exitDone, r)
	require.Contains(t, r.stdout, "resume with: "+line[1]+"\n", "status says how to resume, from any directory")

	// The line as printed, from yet another directory, finishes the run.
	args := strings.Fields(strings.TrimPrefix(line[1], "kommo-import "))
	fin := im.managed(t, args...)
	fin.Dir = t.TempDir()
	b, err := fin.CombinedOutput()
	require.NoError(t, err, "%s", b)
	s.requireExact(t, msgs)

	r = im.run(t, "status")
	require.NotContains(t, r.stdout, "resume with:", "a finished run is not offered for resume")
}
