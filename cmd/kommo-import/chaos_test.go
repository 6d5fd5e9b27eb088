package main_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// TestChaos is a randomized campaign against one import: SIGKILL and SIGTERM
// at random moments, the database cut away and brought back, two processes
// at once, over a simulator that injects API faults and records a repeated
// msgid as a duplicate. It ends with the ledger check and a one-line verdict.
//
// `make test` runs a short campaign; `make chaos` a long one (CHAOS_ROUNDS,
// CHAOS_CONVERSATIONS, CHAOS_SEED).
func TestChaos(t *testing.T) {
	t.Parallel()
	rounds := envInt(t, "CHAOS_ROUNDS", 10)
	convs := envInt(t, "CHAOS_CONVERSATIONS", 12)
	seed := uint64(envInt(t, "CHAOS_SEED", 1))
	r := rand.New(rand.NewPCG(seed, 3))

	s := startSim(t, "--rate", "0", "--seed", strconv.FormatUint(seed, 10), "--latency", "2ms",
		"--faults", "500=0.02,503=0.02,429=0.01,accept-500=0.02,accept-drop=0.02,hang=0.005",
		"--fault-retry-after", "200ms", "--hang", "3s", "--history-delay", "100ms")
	proxy, dbURL := pgtest.NewProxy(t, pgtest.URL(t))
	im := &importer{dbURL: dbURL, apiURL: s.url}
	msgs := ledgertest.Gen(seed, convs, 60)
	args := runArgs("jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "4", "--stage-batch", "20",
		"--request-timeout", "1s", "--reconcile-wait", "300ms", "--max-attempts", "30")

	var kills, terms, drops, pairs int
	for round := 0; round < rounds; round++ {
		procs := 1 + r.IntN(2)
		if procs == 2 {
			pairs++
		}
		cmds := make([]*exec.Cmd, procs)
		for i := range cmds {
			cmds[i] = im.cmd(args...)
			cmds[i].Stdout, cmds[i].Stderr = &bytes.Buffer{}, &bytes.Buffer{}
			require.NoError(t, cmds[i].Start())
		}
		time.Sleep(time.Duration(50+r.IntN(400)) * time.Millisecond)
		switch r.IntN(4) {
		case 0, 1:
			for _, c := range cmds {
				_ = c.Process.Signal(syscall.SIGKILL)
			}
			kills++
		case 2:
			_ = cmds[r.IntN(procs)].Process.Signal(syscall.SIGTERM)
			terms++
		case 3:
			proxy.SetDown(true)
			time.Sleep(time.Duration(200+r.IntN(1500)) * time.Millisecond)
			proxy.SetDown(false)
			drops++
		}
		// Whatever is still running gets a SIGKILL after a while.
		done := make(chan struct{})
		grace := time.Duration(300+r.IntN(700)) * time.Millisecond
		go func() {
			select {
			case <-done:
			case <-time.After(grace):
				for _, c := range cmds {
					_ = c.Process.Signal(syscall.SIGKILL)
				}
			}
		}()
		for _, c := range cmds {
			_ = c.Wait()
			if code := c.ProcessState.ExitCode(); code == 1 || code == 2 {
				t.Fatalf("round %d: exit %d: %s", round, code, c.Stderr)
			}
		}
		close(done)
	}
	started := time.Now()
	final := im.run(t, args...)
	t.Logf("final run: %s\n%s", time.Since(started), final.stdout)
	require.Equal(t, 0, final.code, final.stderr)
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, ledgertest.Newest(msgs))
	st := s.stats(t)
	require.Zero(t, st.Duplicates)
	verdict := fmt.Sprintf("chaos: %d messages, %d rounds (%d kill -9, %d SIGTERM, %d database cuts, %d with two processes), %d API faults: 0 lost, 0 duplicates, order and silent rule intact: PASS",
		len(msgs), rounds, kills, terms, drops, pairs, sum(st.Faults))
	t.Log(verdict)
	if os.Getenv("CHAOS_VERDICT") != "" {
		fmt.Println(verdict)
	}
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	return n
}
