package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

func TestEmptySourceIsNotASuccess(t *testing.T) {
	c := newCLIEnv(t)
	empty := filepath.Join(t.TempDir(), "nightly.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	out, errOut, code := c.run(t, "run", "--source", "jsonl:"+empty, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitIncomplete, code, errOut)
	require.Contains(t, errOut, "kommo-import: the source held no records: nothing was imported")
	require.Contains(t, errOut, "--allow-empty")
	require.Contains(t, out, "records read:        0 valid in 0 conversations, 0 rejected", "the summary is printed all the same")

	_, errOut, code = c.run(t, "run", "--source", "jsonl:"+empty, "--rate", "unlimited", "--progress", "none", "--allow-empty")
	require.Equal(t, ExitOK, code, errOut)

	// A re-sync that finds nothing new is not empty: its records were all known.
	_, errOut, code = c.run(t, "run", "--run", "first", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	out, errOut, code = c.run(t, "run", "--run", "again", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var sum importer.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.EqualValues(t, 14, sum.KnownSent)
	require.Zero(t, sum.Staged)
}

func TestJSONLogsAreJSONToTheLastLine(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "run", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none", "--log-format", "json")
	require.Equal(t, ExitIncomplete, code, errOut)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	require.NotEmpty(t, lines)
	sawElapsed := false
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "not JSON: %q", l)
		for k, v := range m {
			if k == "elapsed_seconds" {
				sawElapsed = true
				_, isNumber := v.(float64)
				require.True(t, isNumber, "%s: %v", k, v)
			}
			require.NotEqual(t, "elapsed", k, "a duration without its unit: %s", l)
		}
	}
	require.True(t, sawElapsed, "planning logs its duration in seconds: %s", errOut)
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.EqualValues(t, ExitIncomplete, last["exit_code"])
	require.Contains(t, last["msg"], "12 rejected records")
	require.NotEmpty(t, last["try"])

	// In text, durations are seconds too.
	_, errOut, _ = c.run(t, "run", "--run", "text", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none")
	require.Regexp(t, `elapsed_seconds=\d+(\.\d+)?( |\n)`, errOut)
}

func TestProgressLogLinesCarryTheBarsNumbers(t *testing.T) {
	// About 3 s of sending: the throughput is measured over heartbeats a second apart.
	c := newFrontedEnv(t, sim.Options{Latency: 80 * time.Millisecond})
	msgs := ledgertest.Gen(34, 3, 14)
	_, errOut, code := c.run(t, "run", "--source", "jsonl:"+ledgertest.WriteJSONL(t, msgs), "--rate", "unlimited", "--workers", "1",
		"--progress", "log", "--progress-interval", "100ms", "--log-format", "json")
	require.Equal(t, ExitOK, code, errOut)
	var sending []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		if m["msg"] == "progress" && m["phase"] == "sending" {
			sending = append(sending, m)
		}
	}
	require.NotEmpty(t, sending, errOut)
	for _, m := range sending {
		for _, k := range []string{"done", "total", "percent", "throughput", "state"} {
			require.Contains(t, m, k)
		}
		require.EqualValues(t, len(msgs), m["total"])
		p := m["percent"].(float64)
		require.True(t, p >= 0 && p <= 100, "percent %v", p)
	}
	last := sending[len(sending)-1]
	require.Positive(t, last["throughput"], "messages/s achieved")
	require.Contains(t, last, "eta_seconds")
}

// syncWriter is a buffer the bar's goroutine writes while a test may read.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestProgressBarFromStagingToSending(t *testing.T) {
	var mu sync.Mutex
	p := importer.Progress{Phase: importer.PhaseStaging, Read: 20000}
	progress := func() importer.Progress {
		mu.Lock()
		defer mu.Unlock()
		return p
	}
	set := func(np importer.Progress) {
		mu.Lock()
		p = np
		mu.Unlock()
		time.Sleep(600 * time.Millisecond) // the bar redraws every 250ms, at most every 200ms
	}
	var w syncWriter
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { showBar(progress, newLineGuard(&w), stop); close(done) }()
	time.Sleep(600 * time.Millisecond)
	set(importer.Progress{Phase: importer.PhaseSending, Total: 20000, Done: 400, Throughput: 4.9, Rate: 5})
	set(importer.Progress{Phase: importer.PhaseSending, Total: 20000, Done: 500, Throughput: 4.9, Rate: 5,
		PausedUntil: time.Now().Add(42 * time.Second)})
	set(importer.Progress{Phase: importer.PhaseSending, Total: 20000, Done: 500, DBDown: true})
	set(importer.Progress{Phase: importer.PhaseSending, Total: 20000, Done: 500, Waiting: "conversations held by another process"})
	close(stop)
	<-done
	out := w.String()
	require.Contains(t, out, "staging: 20,000 records read")
	require.NotRegexp(t, regexp.MustCompile(`-\d+%`), out, "no negative percentage")
	require.Contains(t, out, "2% |")
	require.Contains(t, out, "400/20,000  4.9 msg/s  ETA 1h6m40s")
	require.Regexp(t, `PAUSED \(429\): 4[012]s left`, out)
	require.Contains(t, out, "WAITING FOR THE DATABASE")
	require.Contains(t, out, "WAITING: conversations held by another process")
}

// TestLogLineDuringTheBarClearsItsLine: a WARN logged while the bar is
// drawn starts on a cleared line (not after the bar's text, where the
// next frame would overwrite it), and the bar is drawn again below it.
func TestLogLineDuringTheBarClearsItsLine(t *testing.T) {
	var w syncWriter
	lf := logFlags{format: "text", level: "info"}
	log, sinks, err := lf.open(&w, true)
	require.NoError(t, err)
	progress := func() importer.Progress {
		return importer.Progress{Phase: importer.PhaseSending, Total: 100, Done: 40, Throughput: 4.9, Rate: 5}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { showBar(progress, sinks.guard, stop); close(done) }()
	require.Eventually(t, func() bool { return strings.Contains(w.String(), "40/100") }, 5*time.Second, 10*time.Millisecond)
	log.Info("not shown under a bar")
	log.Warn("the API answered 503", "attempt", 2)
	close(stop)
	<-done
	out := w.String()
	require.NotContains(t, out, "not shown under a bar")
	i := strings.Index(out, "time=")
	require.Positive(t, i, out)
	require.Equal(t, clearLine, out[i-len(clearLine):i], "the log line starts on a cleared line: %q", out)
	rest := out[i:]
	nl := strings.IndexByte(rest, '\n')
	require.Contains(t, rest[:nl], "level=WARN")
	require.Contains(t, rest[nl+1:], "40/100", "the bar is drawn again after the log line")
	require.True(t, strings.HasPrefix(rest[nl+1:], "\r"), "the frame redrawn right after the line: %q", rest[nl+1:])
}

func TestSummaryShowsWhatTheRunFound(t *testing.T) {
	s := &importer.Summary{RunStatus: importer.RunStatus{
		Name: "nightly", ScopeID: "s", Source: "jsonl:/x.jsonl", Records: 5000, Staged: 4000, Sent: 3990, Failed: 10,
		TakenOver: 120, Parked: 3, QuotesDropped: 17,
		UnknownFields: map[string]int64{"payload.mood": 1204, "payload.channel": 1, "payload.z": 1204},
	}, Outcome: importer.OutcomeIncomplete, SentNow: 3990, ElapsedSeconds: 754.25, EffectiveRate: 5.29}
	var b bytes.Buffer
	require.NoError(t, printSummary(&b, s, false, nil, subsetInfo{}))
	out := b.String()
	for _, want := range []string{
		"  taken over:          120 messages from runs no process works any more",
		"  parked:              3 conversations waiting",
		"  quotes dropped:      17 replies or forwards sent without their quote",
		"  unknown fields:      field `payload.mood` on 1,204 records is not part of the Chats API payload and is not sent\n" +
			"                       field `payload.z` on 1,204 records is not part of the Chats API payload and is not sent\n" +
			"                       field `payload.channel` on 1 record is not part of the Chats API payload and is not sent\n",
		"  elapsed:             754.2 s, 5.29 messages/s",
	} {
		require.Contains(t, out, want)
	}

	b.Reset()
	require.NoError(t, printSummary(&b, s, true, nil, subsetInfo{}))
	var m map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &m))
	for _, k := range []string{"taken_over", "parked", "quotes_dropped", "unknown_fields", "elapsed_seconds", "sent_now", "live", "state"} {
		require.Contains(t, m, k)
	}
}

// TestLogFileInJSONIsJSONToTheLastLine: --log-file with --log-format json
// holds the log at --log-level, the summary as one record and the exit
// lines as the last, every line a JSON object.
func TestLogFileInJSONIsJSONToTheLastLine(t *testing.T) {
	c := newCLIEnv(t)
	file := filepath.Join(t.TempDir(), "run.log")
	_, errOut, code := c.run(t, "run", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none",
		"--log-format", "json", "--log-file", file)
	require.Equal(t, ExitIncomplete, code, errOut)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var msgs []string
	var sum map[string]any
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), "not JSON: %q", l)
		msgs = append(msgs, m["msg"].(string))
		if m["msg"] == "summary" {
			sum, _ = m["summary"].(map[string]any)
		}
	}
	require.Contains(t, msgs, "staging done")
	require.NotNil(t, sum, "the summary is a record of the file: %s", b)
	require.EqualValues(t, 12, sum["rejected"])
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	require.EqualValues(t, ExitIncomplete, last["exit_code"])
	require.NotEmpty(t, last["try"])

	// Appended, not replaced: a resumed run's log follows the first.
	_, errOut, _ = c.run(t, "run", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none", "--log-file", file)
	b2, err := os.ReadFile(file)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(b2), string(b)), errOut)
	require.Contains(t, string(b2[len(b):]), "  records read:        5 valid", "text after JSON: the format follows --log-format")
}
