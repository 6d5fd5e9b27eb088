package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// TestE2ESecondSignalWhileTheDatabaseIsGone: with the database cut away,
// the first SIGINT asks for a soft stop the run cannot finish (its
// checkpoints wait for the database), and the second ends the process
// within a second and a half, leaving what it was sending in doubt; with
// the database back, the same command resumes to an exact result.
func TestE2ESecondSignalWhileTheDatabaseIsGone(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0", "--latency", "20ms")
	proxy, viaProxy := pgtest.NewProxy(t, pgtest.URL(t))
	im := &importer{dbURL: viaProxy, apiURL: s.url}
	msgs := ledgertest.Gen(29, 10, 30)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "4")

	cmd := im.managed(t, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.Accepted >= 5
	}, 30*time.Second, 5*time.Millisecond, "sending started: %s", errOut.String())

	proxy.SetDown(true)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	time.Sleep(300 * time.Millisecond)
	select {
	case <-exited:
		t.Fatalf("the soft stop cannot finish without the database, yet the process ended: %s", errOut.String())
	default:
	}
	second := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the second SIGINT did not end the process: %s", errOut.String())
	}
	took := time.Since(second)
	require.Less(t, took, 1500*time.Millisecond, "stderr: %s", errOut.String())
	require.Equal(t, exitInterrupted, cmd.ProcessState.ExitCode(), "stderr: %s", errOut.String())
	require.Contains(t, errOut.String(), "stays in doubt")
	require.Contains(t, errOut.String(), "resume with: kommo-import run")

	proxy.SetDown(false)
	r := im.run(t, args...)
	requireCode(t, exitDone, r)
	s.requireExact(t, msgs)
}

// TestE2EVersionNamesTheBuild: the real binary reports its build, never
// "dev". (A git worktree gets no VCS stamp from go build; formatVersion's
// test covers the revision.)
func TestE2EVersionNamesTheBuild(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(filepath.Join(binDir, "kommo-import"), arg).Output()
		require.NoError(t, err)
		require.Regexp(t, `^kommo-import (\S+|\(unknown version: built without version control information\))(, revision [0-9a-f]+ of \S+( with local changes)?)?, go1\.\d+`, string(out))
		require.NotContains(t, string(out), " dev")
	}
}

// TestE2EMakeBuildStampsTheVersion: "make build" stamps the version git
// describe gives, so --version never says "unknown version" for a binary
// built from a checkout (a git worktree included, where go build itself
// embeds no VCS information).
func TestE2EMakeBuildStampsTheVersion(t *testing.T) {
	t.Parallel()
	want, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	require.NoError(t, err, "the test runs in a git checkout")
	bin := t.TempDir()
	mk := exec.Command("make", "-s", "-C", "../..", "build", "BIN="+bin)
	out, err := mk.CombinedOutput()
	require.NoError(t, err, "%s", out)
	got, err := exec.Command(filepath.Join(bin, "kommo-import"), "--version").Output()
	require.NoError(t, err)
	require.NotContains(t, string(got), "unknown version")
	require.True(t, strings.HasPrefix(string(got), "kommo-import "+strings.TrimSpace(string(want))), "%s", got)
}
