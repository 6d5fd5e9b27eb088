package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/kommoapi"
)

func TestResolveExitCode(t *testing.T) {
	run := invocationFacts{command: "run", sends: true, apiURL: "http://127.0.0.1:8089", run: "nightly",
		resume: "kommo-import run --source csv:x.csv --run nightly"}
	tests := []struct {
		name      string
		err       error
		inv       invocationFacts
		code      int
		msg       string   // a substring
		hints     []string // substrings, in order, one per hint line
		wantLines int
	}{
		{"blocked", fmt.Errorf("send: %w", &importer.StopError{Reason: importer.StopBlocked, Err: &chatsapi.Error{Status: 403}}), run,
			ExitOperator, "the API answered 403", []string{"ask Kommo support", "then resume with: kommo-import run --source csv:x.csv --run nightly"}, 2},
		{"bad signature", &importer.StopError{Reason: importer.StopBadSignature, Err: &chatsapi.Error{Status: 403}}, run,
			ExitOperator, "refused the request signature", []string{"KOMMO_CHANNEL_SECRET (or --channel-secret-file)", "then resume with:"}, 2},
		{"unknown scope", &importer.StopError{Reason: importer.StopUnknownScope, Err: &chatsapi.Error{Status: 404}}, run,
			ExitOperator, "does not know this scope", []string{"--scope-id (env KOMMO_SCOPE_ID) and --api-url (env KOMMO_API_URL)", "then resume with:"}, 2},
		{"clock skew", &importer.StopError{Reason: importer.StopClockSkew, Skew: 20 * time.Minute, Err: &chatsapi.Error{Status: 403, ServerDate: time.Now()}}, run,
			ExitOperator, "clock is about 20m0s ahead of the API's", []string{"enable NTP", "then resume with:"}, 2},
		{"API unreachable names --api-url", &importer.InterruptedError{Cause: importer.CauseAPIUnreachable, Err: errors.New("dial tcp: connection refused")}, run,
			ExitInterrupted, "no Chats API answered at http://127.0.0.1:8089 (--api-url, env KOMMO_API_URL): dial tcp: connection refused",
			[]string{"check --api-url and the network", "resume with: kommo-import run"}, 2},
		{"API unavailable", &importer.InterruptedError{Cause: importer.CauseAPIUnavailable, Detail: "message m-1", Err: errors.New("503")}, run,
			ExitInterrupted, "the API keeps failing (message m-1): 503", []string{"--max-attempts", "resume with:"}, 2},
		{"database gone", &importer.InterruptedError{Cause: importer.CauseDatabaseUnavailable, Err: errors.New("EOF")}, run,
			ExitInterrupted, "the database has been unavailable for too long", []string{"--db-outage-limit", "resume with:"}, 2},
		{"soft stop", &importer.InterruptedError{Cause: importer.CauseSignal}, run,
			ExitInterrupted, "interrupted by a signal", []string{"resume with: kommo-import run --source csv:x.csv --run nightly"}, 1},
		{"hard stop", &importer.InterruptedError{Cause: importer.CauseSignal}, invocationFacts{sends: true, hard: true, stopped: true, resume: run.resume},
			ExitInterrupted, "interrupted by a signal; a message whose request was in flight stays in doubt", []string{"resume with:"}, 1},
		{"hard stop, command stuck", errHardStop, run,
			ExitInterrupted, "stopped at once, without waiting for the command to finish: a message whose request was in flight stays in doubt", []string{"resume with:"}, 1},
		{"cancelled by a signal", fmt.Errorf("status: %w", context.Canceled), invocationFacts{stopped: true},
			ExitInterrupted, "interrupted: status: context canceled", []string{"run the same command again"}, 1},
		{"interrupted, untyped", fmt.Errorf("send: %w: %w", importer.ErrInterrupted, context.Canceled), invocationFacts{stopped: true, resume: run.resume},
			ExitInterrupted, "send: interrupted: context canceled", []string{"resume with:"}, 1},
		{"mismatch", &importer.MismatchError{Run: "nightly", Field: "source version", Have: "1 bytes", Want: "2 bytes"}, run,
			ExitUsage, `run "nightly" imported its source when it was 1 bytes`, []string{"give another --run name"}, 1},
		{"source", &importer.SourceError{Name: "x.csv", Err: errors.New("unexpected EOF")}, run,
			ExitFatal, "source x.csv: unexpected EOF", []string{"check the source x.csv", "then resume with: kommo-import run"}, 2},
		{"abandoned", fmt.Errorf("run nightly: %w", importer.ErrRunAbandoned), run, ExitUsage, "the run was abandoned", []string{"give another --run name"}, 1},
		{"finished", fmt.Errorf("run nightly: %w", importer.ErrRunFinished), run, ExitUsage, "the run has finished", []string{"a new export of a table, a query or stdin is a new run"}, 1},
		{"no run", fmt.Errorf("%w %q", importer.ErrNoRun, "x"), run, ExitUsage, `no such run "x"`, []string{"kommo-import runs lists the runs"}, 1},
		{"live", importer.ErrRunLive, run, ExitUsage, "a process is working the run", []string{"kommo-import status --run nightly shows the live processes"}, 1},
		// The README says the truth (importer/processes.go): a killed process's session ends with it.
		{"live: when a killed process stops counting", importer.ErrRunLive, run, ExitUsage, "a process is working the run",
			[]string{"A killed process stops counting as live at once (its database session ends with it); a host cut off from the network, after 4 seconds"}, 1},
		{"has sent", importer.ErrRunHasSent, run, ExitUsage, "the run has sent messages", []string{"kommo-import runs abandon nightly"}, 1},
		{"not planned", importer.ErrNotPlanned, run, ExitUsage, "not staged and planned yet", []string{"resume it with kommo-import run"}, 1},
		{"bad database URL", fmt.Errorf("DATABASE_URL: %w", &importer.DatabaseURLError{URL: true, Syntax: true}), run,
			ExitUsage, "DATABASE_URL: cannot parse the PostgreSQL URL", []string{"percent-encode"}, 1},
		{"database down", &importer.ConnectError{Target: "postgres://k@db:5432/k", Err: errors.New("refused")}, run,
			ExitFatal, "connect to postgres://k@db:5432/k: refused", []string{"check that PostgreSQL runs at postgres://k@db:5432/k"}, 1},
		{"empty", &emptySourceError{run: "nightly", source: "x.csv"}, run, ExitIncomplete, "the source held no records: nothing was imported", []string{"--allow-empty"}, 1},
		{"incomplete", &incompleteError{run: "nightly", failed: 2}, run, ExitIncomplete, "run nightly has 2 failed messages and 0 rejected records",
			[]string{"kommo-import report --run nightly lists them", "kommo-import retry --run nightly"}, 2},
		{"contacts: token refused at preflight", &importer.ContactsError{Preflight: true, Host: "acme.kommo.com", Err: &kommoapi.Error{Op: "search contacts", Status: 401}}, run,
			ExitUsage, "Kommo's main API at acme.kommo.com refused the token at the preflight, before anything was sent: kommo api: search contacts: 401",
			[]string{"generate a new long-lived token in Kommo"}, 1},
		{"contacts: may not link", &importer.ContactsError{Preflight: true, Host: "acme.kommo.com", Err: &kommoapi.Error{Op: kommoapi.OpChatLinks, Status: 403}}, run,
			ExitUsage, "refused the token at the preflight", []string{"Generate the token in that integration, as an admin"}, 1},
		{"contacts: revoked mid-run", &importer.ContactsError{Host: "acme.kommo.com", Err: &kommoapi.Error{Op: kommoapi.OpLinkChats, Status: 401}}, run,
			ExitOperator, "refused the token while linking chats to contacts", []string{"generate a new long-lived token", "then resume with: kommo-import run"}, 2},
		{"contacts: not paid", &importer.ContactsError{Preflight: true, Host: "acme.kommo.com", Err: &kommoapi.Error{Op: "search contacts", Status: 402}}, run,
			ExitOperator, "402", []string{"renew the subscription"}, 1},
		{"contacts: no answer at preflight", &importer.ContactsError{Preflight: true, Host: "acme.kommo.com", Err: &kommoapi.Error{Op: "search contacts", Err: errors.New("connection refused")}}, run,
			ExitInterrupted, "did not answer at the preflight", []string{"check --kommo-domain (acme.kommo.com) and the network; nothing was sent"}, 1},
		{"contacts: wrong address", &importer.ContactsError{Preflight: true, Host: "acme.kommo.com", Err: &kommoapi.Error{Op: "search contacts", Status: 404}}, run,
			ExitUsage, "refused the request at the preflight", []string{"check --kommo-domain (acme.kommo.com)"}, 1},
		{"contacts: retry cannot link", fmt.Errorf("conversation c1: %w", importer.ErrLinkingNeeded), run,
			ExitUsage, "links chats to contacts", []string{"resume it with the run command that started it"}, 1},
		{"contacts: mode", &importer.MismatchError{Run: "nightly", Field: "contacts", Have: "link", Want: "none"}, run,
			ExitUsage, `run "nightly" was started with --link-contacts, and cannot go on without --link-contacts`, []string{"a run links all its chats or none"}, 1},
		{"usage", withHint(ExitUsage, errors.New("no scope"), "kommo-import connect"), run, ExitUsage, "no scope", []string{"kommo-import connect"}, 1},
		{"anything else", errors.New("boom"), run, ExitFatal, "boom", []string{"fix the cause, then resume with: kommo-import run"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := resolveExitCode(tt.err, tt.inv)
			require.Equal(t, tt.code, o.code)
			require.Contains(t, o.msg, tt.msg)
			require.Len(t, o.hints, tt.wantLines, "%q", o.hints)
			for i, h := range tt.hints {
				require.Contains(t, o.hints[i], h)
			}
		})
	}
}

func TestExitLinesFollowTheLogFormat(t *testing.T) {
	err := &commandError{err: &incompleteError{run: "r", rejected: 3}, inv: invocationFacts{logJSON: true}}
	var b bytes.Buffer
	require.Equal(t, ExitIncomplete, ExitCode(err, &b))
	require.Equal(t, 1, strings.Count(b.String(), "\n"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(b.Bytes(), &m))
	require.Equal(t, "WARN", m["level"])
	require.Equal(t, "run r has 0 failed messages and 3 rejected records", m["msg"])
	require.EqualValues(t, 3, m["exit_code"])
	require.Len(t, m["try"], 3)

	b.Reset()
	require.Equal(t, ExitIncomplete, ExitCode(err.err, &b))
	require.Equal(t, "kommo-import: run r has 0 failed messages and 3 rejected records\n"+
		"Try: kommo-import report --run r lists them\n"+
		"     fix the rejected records in the source (kommo-import validate lists them) and import it again: messages already sent are skipped\n"+
		"     or, once looked at, acknowledge them: kommo-import runs ack r (a later run of the scope does not fail on the same records again; --max-rejects N allows some)\n", b.String())
}

func TestResumeCommand(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("source", "", "")
	fs.String("database-url", "", "")
	fs.String("source-dsn", "", "")
	fs.String("run", "", "")
	fs.Bool("json", false, "")
	env := map[string]string{envDatabaseURL: "postgres://u:pw@db/x"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		args  []string
		run   string
		want  string
		notes int
	}{
		{[]string{"--source", "csv:a b.csv", "--json"}, "r1", `kommo-import run --source 'csv:a b.csv' --json --run r1`, 0},
		{[]string{"--run=mine", "--source", "x.csv"}, "mine", `kommo-import run --run=mine --source x.csv`, 0},
		{[]string{"--database-url", "postgres://u:pw@db/x", "--source", "x.csv"}, "r", `kommo-import run --database-url "$DATABASE_URL" --source x.csv --run r`, 0},
		{[]string{"-database-url=postgres://u:other@db/x"}, "r", `kommo-import run --database-url "$DATABASE_URL" --run r`, 1},
		{[]string{"--source", "postgres", "--source-dsn", "host=h password='p w'"}, "r", `kommo-import run --source postgres --source-dsn "$KOMMO_SOURCE_DSN" --run r`, 1},
		{[]string{"--json", "--source", "it's.csv"}, "r", `kommo-import run --json --source 'it'\''s.csv' --run r`, 0},
	}
	for _, tt := range tests {
		line, notes := resumeCommand(fs, getenv, tt.args, tt.run)
		require.Equal(t, tt.want, line)
		require.Len(t, notes, tt.notes)
		require.NotContains(t, line+strings.Join(notes, ""), "pw")
	}
}
