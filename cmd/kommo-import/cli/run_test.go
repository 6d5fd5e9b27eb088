package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

const (
	cliScope  = "chan_acct"
	cliSecret = "cli-test-secret-8d1e"
)

// cliEnv is an environment with a database, a simulator and the secret.
type cliEnv struct {
	vars map[string]string
	sim  *sim.Server
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &cliEnv{sim: s, vars: map[string]string{
		envDatabaseURL: pgtest.URL(t), envScopeID: cliScope, envAPIURL: srv.URL, envChannelSecret: cliSecret,
	}}
}

func (c *cliEnv) run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Getenv: func(k string) string { return c.vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	err := Run(context.Background(), args, env, nil)
	code = ExitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestRunCommandImportsAndReports(t *testing.T) {
	c := newCLIEnv(t)
	out, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, ": done\n")
	require.Contains(t, out, "sent:                14 (14 now)")
	require.Len(t, c.sim.Ledger(), 14)
	require.NotContains(t, out+errOut, cliSecret)

	// status --json of the (derived, stable) run name; the same command resumes to nothing.
	out, _, code = c.run(t, "status", "--json")
	require.Equal(t, ExitOK, code)
	var st importer.RunStatus
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	require.Equal(t, importer.RunDone, st.State)
	require.EqualValues(t, 14, st.Sent)
	require.True(t, strings.HasPrefix(st.Name, "messages.jsonl-"), st.Name)

	out, _, code = c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--json")
	require.Equal(t, ExitOK, code)
	var sum importer.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.Equal(t, st.Name, sum.Name, "the same command resumes the same run")
	require.Zero(t, sum.SentNow)
	require.Len(t, c.sim.Ledger(), 14)

	out, _, code = c.run(t, "runs")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, st.Name)
}

func TestRunCommandWithRejectsExitsIncomplete(t *testing.T) {
	c := newCLIEnv(t)
	out, errOut, code := c.run(t, "run", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitIncomplete, code, "stderr: %s", errOut)
	require.Contains(t, out, "12 rejected")
	require.Contains(t, errOut, "kommo-import report --run")
}

func TestRunCommandConfigurationErrors(t *testing.T) {
	c := newCLIEnv(t)
	secretFile := t.TempDir() + "/secret"
	require.NoError(t, os.WriteFile(secretFile, []byte(cliSecret+"\n"), 0o600))
	tests := []struct {
		name    string
		unset   string
		args    []string
		wantErr string
	}{
		{"no secret", envChannelSecret, []string{"--source", sampleJSONL}, "no channel secret: set KOMMO_CHANNEL_SECRET"},
		{"no scope", envScopeID, []string{"--source", sampleJSONL}, "no scope"},
		{"no database", envDatabaseURL, []string{"--source", sampleJSONL}, "no database"},
		{"no source", "", nil, "no source"},
		{"zero rate", "", []string{"--source", sampleJSONL, "--rate", "0"}, "--rate 0: must be above 0"},
		{"stdin needs a run name", "", []string{"--source", "jsonl:-"}, "needs --run NAME"},
		{"plain http to a remote host", "", []string{"--source", sampleJSONL, "--api-url", "http://example.com"}, "http"},
		{"unknown flag", "", []string{"--sourc", "x"}, "unknown flag --sourc: did you mean --source?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range c.vars {
				if k != tt.unset {
					vars[k] = v
				}
			}
			cc := &cliEnv{vars: vars, sim: c.sim}
			_, errOut, code := cc.run(t, append([]string{"run"}, tt.args...)...)
			require.Equal(t, ExitUsage, code, errOut)
			require.Contains(t, errOut, tt.wantErr)
			require.NotContains(t, errOut, cliSecret)
		})
	}
	// The secret file works where the environment has none.
	vars := map[string]string{}
	for k, v := range c.vars {
		if k != envChannelSecret {
			vars[k] = v
		}
	}
	cc := &cliEnv{vars: vars, sim: c.sim}
	_, errOut, code := cc.run(t, "run", "--source", sampleCSV, "--channel-secret-file", secretFile, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
}

func TestRunCommandOnANewVersionOfTheSameFile(t *testing.T) {
	c := newCLIEnv(t)
	dir := t.TempDir()
	path := dir + "/nightly.jsonl"
	all, err := os.ReadFile(sampleJSONL)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(all), "\n")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines[:8], "")), 0o600))
	_, errOut, code := c.run(t, "run", "--source", "jsonl:"+path, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	first := len(c.sim.Ledger())
	require.Positive(t, first)

	// Tonight's export overwrote the file: the same command is a re-sync, a new run.
	require.NoError(t, os.WriteFile(path, all, 0o600))
	out, errOut, code := c.run(t, "run", "--source", "jsonl:"+path, "--rate", "unlimited", "--progress", "none", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var sum importer.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.EqualValues(t, first, sum.KnownSent, "what the first night sent is skipped")
	require.Len(t, c.sim.Ledger(), 14, "every message once")

	// An explicit run name on a changed file is refused: its staging resumes by line.
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines[:3], "")), 0o600))
	_, errOut, code = c.run(t, "run", "--source", "jsonl:"+path, "--run", sum.Name, "--progress", "none")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "give another --run name")
}

// The sample exports hold a reply (m-0014 quotes m-0002) and a forward
// (m-0010 forwards m-0009): from JSONL and from CSV alike they reach the
// API naming the quoted message, by Kommo's id once it has been sent.
func TestRepliesAndForwardsOfTheSampleExports(t *testing.T) {
	for _, src := range []string{sampleJSONL, sampleCSV} {
		t.Run(src, func(t *testing.T) {
			c := newCLIEnv(t)
			_, errOut, code := c.run(t, "run", "--source", src, "--rate", "unlimited", "--progress", "none", "--workers", "1")
			require.Equal(t, ExitOK, code, "stderr: %s", errOut)
			byID := map[string]sim.LedgerEntry{}
			for _, e := range c.sim.Ledger() {
				byID[e.MsgID] = e
			}
			require.Equal(t, byID["m-0002"].KommoMsgID, byID["m-0014"].ReplyTo(), "the reply names the quoted message by Kommo's id")
			fw := byID["m-0010"].Forward()
			require.Contains(t, []string{byID["m-0009"].KommoMsgID, "m-0009"}, fw, "the forward names m-0009")
		})
	}
}

// A field the Chats API payload does not have is not sent; the run's
// summary names it with the number of records carrying it.
func TestRunSummaryListsUnknownFields(t *testing.T) {
	c := newCLIEnv(t)
	path := t.TempDir() + "/moods.jsonl"
	var lines strings.Builder
	for i := range 3 {
		fmt.Fprintf(&lines, `{"timestamp": 1709284502, "msgid": "mood-%d", "conversation_id": "c-1", "mood": "happy", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}`+"\n", i)
	}
	require.NoError(t, os.WriteFile(path, []byte(lines.String()), 0o600))
	out, errOut, code := c.run(t, "run", "--source", "jsonl:"+path, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, "field `payload.mood` on 3 records is not part of the Chats API payload and is not sent")
	require.Len(t, c.sim.Ledger(), 3)
}
