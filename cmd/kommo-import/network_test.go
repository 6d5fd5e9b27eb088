//go:build network

package main_test

// Network failures that need the kernel's own TCP behaviour, reproduced with
// iptables on 127.0.0.1: packets dropped, nothing closed. They need root and
// iptables, and change the machine's firewall for a few seconds (rules
// matching the test's own ports and a user of its own), so they run apart
// from make test: make test-network.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
)

// asNobody runs cmd as the user nobody, whose packets the tests drop.
func asNobody(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	u, err := user.Lookup("nobody")
	require.NoError(t, err, "make test-network needs a user nobody")
	var uid, gid uint32
	_, err = fmt.Sscan(u.Uid, &uid)
	require.NoError(t, err)
	_, err = fmt.Sscan(u.Gid, &gid)
	require.NoError(t, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}

// dropFrom drops every packet user nobody sends to port on loopback until the
// returned function is called: a host cut off from that service, its
// connections neither closed nor answered.
func dropFrom(t *testing.T, port string) func() {
	t.Helper()
	rule := []string{"OUTPUT", "-o", "lo", "-p", "tcp", "--dport", port, "-m", "owner", "--uid-owner", "nobody", "-j", "DROP"}
	out, err := exec.Command("iptables", append([]string{"-I"}, rule...)...).CombinedOutput()
	require.NoError(t, err, "make test-network needs root and iptables: %s", out)
	done := false
	heal := func() {
		if !done {
			done = true
			_ = exec.Command("iptables", append([]string{"-D"}, rule...)...).Run()
		}
	}
	t.Cleanup(heal)
	return heal
}

// nobodyDir is a directory nobody may read, with the binaries in it.
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "knet")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	for _, b := range []string{"kommo-import"} {
		data, err := os.ReadFile(filepath.Join(binDir, b))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, b), data, 0o755))
	}
	return dir
}

// readableBy copies the export into dir, where user nobody can read it.
func readableBy(t *testing.T, dir, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	dst := filepath.Join(dir, filepath.Base(path))
	require.NoError(t, os.WriteFile(dst, data, 0o644))
	return dst
}

// TestNetworkAStagingProcessCutOffCountsAsGone: the process staging a large
// export loses its network to PostgreSQL (packets dropped, nothing closed).
// The server must drop its session (and the staging lock it holds) within
// about a minute, so that a second process of the run can stage and send it:
// before, the server kept the session until its TCP keepalive noticed (two
// hours by default) and the second process waited all that time.
func TestNetworkAStagingProcessCutOffCountsAsGone(t *testing.T) {
	dir, err := tempShortDir(t)
	require.NoError(t, err)
	pgsh := filepath.Join("..", "..", "scripts", "pg.sh")
	out, err := exec.Command(pgsh, "start", dir).Output()
	require.NoError(t, err)
	t.Cleanup(func() { _ = exec.Command(pgsh, "stop", dir).Run() })
	dbURL := strings.TrimSpace(string(out))
	port := dbURL[strings.LastIndex(dbURL, ":")+1 : strings.LastIndex(dbURL, "/")]
	s := startSim(t, "--rate", "0")
	im := &importer{dbURL: dbURL, apiURL: s.url}
	bin := nobodyDir(t)
	msgs := ledgertest.Gen(51, 2000, 60) // about 60,000 messages: staging takes a few seconds
	src := readableBy(t, bin, ledgertest.WriteJSONL(t, msgs))
	args := runArgs("jsonl:"+src, "--rate", "unlimited", "--stage-batch", "2000")

	a := exec.Command(filepath.Join(bin, "kommo-import"), args...)
	a.Env = im.cmd().Env
	asNobody(t, a)
	var aErr syncBuffer
	a.Stderr = &aErr
	require.NoError(t, a.Start())
	t.Cleanup(func() { _ = a.Process.Kill(); _ = a.Wait() })
	conn := connect(t, dbURL)
	require.Eventually(t, func() bool {
		var line int64
		err := conn.QueryRow(t.Context(), `SELECT staged_line FROM kommo_import_runs WHERE name = $1`, e2eRun).Scan(&line)
		return err == nil && line > 0
	}, time.Minute, 50*time.Millisecond, "the first process never staged: %s", aErr.String())
	heal := dropFrom(t, port)
	cut := time.Now()
	defer heal()

	// The second process of the run waits for the staging lock; it gets it
	// once the server has given the cut-off session up, and finishes
	// staging.
	done := make(chan result, 1)
	go func() { done <- im.run(t, args...) }()
	require.Eventually(t, func() bool {
		var staged bool
		err := conn.QueryRow(t.Context(), `SELECT staging_done FROM kommo_import_runs WHERE name = $1`, e2eRun).Scan(&staged)
		return err == nil && staged
	}, 3*time.Minute, 100*time.Millisecond, "the second process never finished staging: the cut-off session held the run")
	waited := time.Since(cut)
	t.Logf("the second process finished staging %s after the first was cut off", waited.Round(time.Second))
	require.Less(t, waited, 2*time.Minute, "the cut-off process's session must go within about a minute, not hours")
	r := <-done
	requireCode(t, exitDone, r)
	heal()
	s.requireExact(t, msgs)
}

// TestNetworkABlackHoledRequestNeverArrivesLater: the network to the API
// drops every packet of one process for 20 s, then heals. Its request in
// flight times out (--request-timeout 3s), the message is looked up
// (absent) and sent again once the network is back: the original must not
// reach the API too. Before, a timed-out request's bytes stayed in the
// kernel's send queue, were retransmitted when the network healed, and
// arrived after the resend (1 duplicate in 400 messages).
func TestNetworkABlackHoledRequestNeverArrivesLater(t *testing.T) {
	s := startSim(t, "--rate", "0", "--latency", "5ms")
	im := newImporter(t, s)
	port := s.url[strings.LastIndex(s.url, ":")+1:]
	bin := nobodyDir(t)
	msgs := ledgertest.Gen(52, 200, 8)
	src := readableBy(t, bin, ledgertest.WriteJSONL(t, msgs))
	args := runArgs("jsonl:"+src, "--rate", "40", "--request-timeout", "3s", "--max-attempts", "100")
	a := exec.Command(filepath.Join(bin, "kommo-import"), args...)
	a.Env = im.cmd().Env
	asNobody(t, a)
	var aErr syncBuffer
	a.Stderr = &aErr
	require.NoError(t, a.Start())
	t.Cleanup(func() { _ = a.Process.Kill(); _ = a.Wait() })
	require.Eventually(t, func() bool { return len(ledgertest.ReadLedger(t, s.ledger)) > 100 }, time.Minute, 50*time.Millisecond,
		"the process as nobody sent nothing: %s", &aErr)
	heal := dropFrom(t, port)
	time.Sleep(20 * time.Second)
	heal()
	require.NoError(t, a.Wait(), aErr.String())
	st := s.stats(t)
	t.Logf("%d messages; %d requests; %d duplicates", len(msgs), st.Requests, st.Duplicates)
	s.requireExact(t, msgs)
}
