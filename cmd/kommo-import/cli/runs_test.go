package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

// interruptedRun starts a run of msgs and stops it softly once the simulator
// has some of its messages: a run with work left and no live process.
func interruptedRun(t *testing.T, c *frontedEnv, name, path string) cmdResult {
	t.Helper()
	sig := make(chan os.Signal, 1)
	done := c.startWithSignals(sig, "run", "--run", name, "--source", "jsonl:"+path, "--rate", "unlimited", "--workers", "1", "--progress", "none")
	require.Eventually(t, func() bool { return len(c.sim.Ledger()) >= 3 }, 30*time.Second, 5*time.Millisecond)
	sig <- os.Interrupt
	res := <-done
	require.Equal(t, ExitInterrupted, res.code, res.stderr)
	return res
}

func TestStatusOfALiveRun(t *testing.T) {
	c := newFrontedEnv(t, sim.Options{Latency: 30 * time.Millisecond})
	msgs := ledgertest.Gen(32, 4, 20)
	path := ledgertest.WriteJSONL(t, msgs)

	// While it runs: live, with host and pid.
	done := c.start("run", "--run", "live", "--source", "jsonl:"+path, "--rate", "unlimited", "--workers", "1", "--progress", "none")
	require.Eventually(t, func() bool { return len(c.sim.Ledger()) >= 2 }, 30*time.Second, 5*time.Millisecond)
	out, errOut, code := c.run(t, "status", "--run", "live")
	require.Equal(t, ExitOK, code, errOut)
	host, _ := os.Hostname()
	require.Regexp(t, fmt.Sprintf(`processes\s+1 live: %s pid %d since \S+ \(heartbeat (just now|\d+s ago)\)`, regexp.QuoteMeta(host), os.Getpid()), out)
	require.Regexp(t, `state\s+sending\n`, out)
	require.Regexp(t, `last delivery\s+`, out)
	out, _, _ = c.run(t, "runs")
	require.Regexp(t, `live\s+sending\s+yes \(1\)`, out)
	_, errOut, code = c.run(t, "runs", "abandon", "live")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "a process is working the run")
	require.Contains(t, errOut, "kommo-import status --run live shows the live processes")
	res := <-done
	require.Equal(t, ExitOK, res.code, res.stderr)
}

func TestInterruptedRunsAreResumedAbandonedOrDeleted(t *testing.T) {
	c := newFrontedEnv(t, sim.Options{Latency: 30 * time.Millisecond})
	path2 := ledgertest.WriteJSONL(t, ledgertest.Gen(33, 4, 20))
	interruptedRun(t, c, "half", path2)
	out, errOut, code := c.run(t, "status", "--run", "half")
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `state\s+interrupted: work is left and no process works the run\n`, out)
	require.Regexp(t, `processes\s+no live process: run the same command to resume\n`, out)
	require.Regexp(t, `stopped because\s+interrupted by a signal`, out)
	for _, row := range []string{"taken over", "parked", "quotes dropped", "reconciled"} {
		require.Regexp(t, row+`\s+\d+ `, out)
	}
	out, _, _ = c.run(t, "runs")
	require.Regexp(t, `half\s+interrupted\s+no\s+\d+`, out)

	// A run that sent messages cannot be deleted, only abandoned.
	_, errOut, code = c.run(t, "runs", "delete", "half")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "the run has sent messages")
	require.Contains(t, errOut, "abandon it instead: kommo-import runs abandon half")

	out, errOut, code = c.run(t, "runs", "abandon", "half")
	require.Equal(t, ExitOK, code, errOut)
	require.Regexp(t, `^run half abandoned: it is never resumed. Its \d+ unsent messages \(\d+ pending, 0 in doubt\) go to the next run that stages them`, out)
	out, _, code = c.run(t, "runs", "abandon", "--json", "half")
	require.Equal(t, ExitOK, code)
	var res2 runsChangeResult
	require.NoError(t, json.Unmarshal([]byte(out), &res2))
	require.Equal(t, "already_abandoned", res2.Action)

	out, _, _ = c.run(t, "status", "--run", "half", "--json")
	var st importer.RunStatus
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, importer.RunAbandoned, st.State)
	require.False(t, st.Live)
	out, _, _ = c.run(t, "status", "--run", "half")
	require.Regexp(t, `state\s+abandoned: never resumed`, out)

	_, errOut, code = c.run(t, "run", "--run", "half", "--source", "jsonl:"+path2, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "an abandoned run is never resumed: give another --run name")

	// A run that sent nothing can be deleted.
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	_, errOut, code = c.run(t, "run", "--run", "nothing", "--source", "jsonl:"+empty, "--allow-empty", "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	out, errOut, code = c.run(t, "runs", "delete", "nothing", "--json")
	require.Equal(t, ExitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &res2))
	require.Equal(t, "deleted", res2.Action)
	_, errOut, code = c.run(t, "status", "--run", "nothing")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `no such run "nothing"`)

	_, errOut, code = c.run(t, "runs", "abandn", "x")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `unknown runs command "abandn": did you mean abandon?`)
	_, errOut, code = c.run(t, "runs", "abandon")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "give one run name, not 0")
}

func TestStatusText(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &importer.RunStatus{
		Name: "nightly", State: importer.RunSending, Live: true, Processes: 2, Rate: 5, Notify: importer.NotifyNewestIncoming,
		LiveProcesses: []importer.ProcessInfo{
			{Host: "a", PID: 10, StartedAt: now.Add(-time.Hour), HeartbeatAt: now.Add(-time.Second)},
			{Host: "b", PID: 20, StartedAt: now.Add(-time.Minute), HeartbeatAt: now},
		},
		ProgressAt: now.Add(-3 * time.Minute), StopReason: "interrupted by a signal",
		TakenOver: 7, Parked: 2, QuotesDropped: 3, UnknownFields: map[string]int64{"payload.mood": 1204},
		PausedUntil: now.Add(42 * time.Second),
	}
	var b strings.Builder
	require.NoError(t, printStatus(&b, st, now))
	out := b.String()
	for _, want := range []string{
		"processes        2 live: a pid 10 since " + now.Add(-time.Hour).Local().Format(time.RFC3339) + " (heartbeat 1s ago); b pid 20 since",
		"last delivery    3m ago (",
		"stopped because  interrupted by a signal\n",
		"notify / rate    newest-incoming / 5 req/s\n",
		"taken over       7 messages from runs no process works any more\n",
		"parked           2 conversations",
		"quotes dropped   3 replies or forwards",
		"unknown field    field `payload.mood` on 1,204 records is not part of the Chats API payload and is not sent\n",
		"paused until     " + now.Add(42*time.Second).Local().Format(time.RFC3339) + " (429: every request waits; 42s left)\n",
	} {
		require.Contains(t, out, want)
	}
}
