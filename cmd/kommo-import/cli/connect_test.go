package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
)

const (
	kommoToken   = "long-lived-token-77c1e0"
	accountAmojo = "af9945ff-1490-4cad-807d-945c15d88bec"
)

// fakeKommo is the main API (v4) of one account: the account with its
// amojo_id, and its users in pages of two (so five users are three pages).
// A wrong token gets the documented 401 problem+json.
type fakeKommo struct {
	users    []map[string]any
	requests atomic.Int64
	// limited: the next this many requests get a 429 asking for a second.
	limited atomic.Int64
}

func (f *fakeKommo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	w.Header().Set("Content-Type", "application/hal+json")
	if f.limited.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+kommoToken {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"Invalid token"}`))
		return
	}
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/api/v4/account" && q.Get("with") == "amojo_id":
		_ = json.NewEncoder(w).Encode(map[string]any{"id": 31337, "name": "Acme", "subdomain": "acme", "amojo_id": accountAmojo})
	case r.URL.Path == "/api/v4/users" && q.Get("with") == "amojo_id":
		page, _ := strconv.Atoi(q.Get("page"))
		from := (page - 1) * 2
		if page < 1 || from >= len(f.users) {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		to := min(from+2, len(f.users))
		links := map[string]any{}
		if to < len(f.users) {
			links["next"] = map[string]string{"href": fmt.Sprintf("https://acme.kommo.com/api/v4/users?page=%d", page+1)}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"_page": page, "_links": links, "_embedded": map[string]any{"users": f.users[from:to]}})
	default:
		http.NotFound(w, r)
	}
}

func newFakeKommo(t *testing.T) (*fakeKommo, string) {
	t.Helper()
	f := &fakeKommo{users: []map[string]any{
		{"id": 1, "name": "Admin", "email": "admin@acme.test", "amojo_id": "amojo-admin"},
		{"id": 2, "name": "Dana", "email": "dana@acme.test", "amojo_id": "amojo-dana"},
		{"id": 3, "name": "Ivan", "email": "ivan@acme.test", "amojo_id": nil},
		{"id": 4, "name": "Lena", "email": "lena@acme.test", "amojo_id": "amojo-lena"},
		{"id": 5, "name": "Oleg", "email": "Oleg@Acme.test", "amojo_id": "amojo-oleg"}, // page 3
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// connectEnv is a simulator and an environment holding the channel secret.
func connectEnv(t *testing.T) map[string]string {
	t.Helper()
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return map[string]string{envAPIURL: srv.URL, envChannelSecret: cliSecret}
}

func runWith(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	err := Run(context.Background(), args, env, nil)
	code = ExitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

// cliScope is "chan_acct": the simulator accepts connect for channel "chan".
func TestConnectPrintsScope(t *testing.T) {
	t.Parallel()
	vars := connectEnv(t)
	out, errOut, code := runWith(t, vars, "connect", "--channel-id", "chan", "--account-id", accountAmojo, "--title", "History import")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, cliScope+"\n", out, "the scope alone on stdout, for SCOPE=$(...)")
	require.Contains(t, errOut, "connected channel chan to account "+accountAmojo)
	require.Contains(t, errOut, "export KOMMO_SCOPE_ID=chan_acct")
	require.NotContains(t, out+errOut, cliSecret)

	out, _, code = runWith(t, vars, "connect", "--channel-id", "chan", "--account-id", accountAmojo, "--json")
	require.Equal(t, ExitOK, code)
	var res connectResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, connectResult{ScopeID: cliScope, ChannelID: "chan", AccountID: accountAmojo, HookAPIVersion: "v2"}, res)
}

func TestConnectWritesEnvFile(t *testing.T) {
	t.Parallel()
	vars := connectEnv(t)
	dir := t.TempDir()

	fresh := filepath.Join(dir, "fresh.env")
	_, errOut, code := runWith(t, vars, "connect", "--channel-id", "chan", "--account-id", accountAmojo, "--env-file", fresh)
	require.Equal(t, ExitOK, code, errOut)
	b, err := os.ReadFile(fresh)
	require.NoError(t, err)
	require.Equal(t, "KOMMO_SCOPE_ID=chan_acct\n", string(b))
	st, err := os.Stat(fresh)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	existing := filepath.Join(dir, ".env")
	before := "# rehearsal\nDATABASE_URL=postgres://x@localhost/db\nexport KOMMO_SCOPE_ID=old_scope\nKOMMO_API_URL=http://localhost:8080\nKOMMO_SCOPE_ID=older\nLAST=1"
	require.NoError(t, os.WriteFile(existing, []byte(before), 0o640))
	out, errOut, code := runWith(t, vars, "connect", "--channel-id", "chan", "--account-id", accountAmojo, "--env-file", existing)
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "chan_acct\n", out)
	require.Contains(t, errOut, "wrote KOMMO_SCOPE_ID to "+existing)
	b, err = os.ReadFile(existing)
	require.NoError(t, err)
	require.Equal(t, "# rehearsal\nDATABASE_URL=postgres://x@localhost/db\nKOMMO_SCOPE_ID=chan_acct\nKOMMO_API_URL=http://localhost:8080\nLAST=1", string(b), "other lines kept byte for byte")
	require.NotContains(t, string(b), cliSecret)
	st, err = os.Stat(existing)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm(), "the file keeps its mode")
	left, err := filepath.Glob(filepath.Join(dir, ".*.env*"))
	require.NoError(t, err)
	require.Empty(t, left, "no temp file left behind")
}

func TestConnectLooksUpAccount(t *testing.T) {
	t.Parallel()
	vars := connectEnv(t)
	fake, kommoURL := newFakeKommo(t)
	vars[envKommoToken] = kommoToken
	out, errOut, code := runWith(t, vars, "connect", "--channel-id", "chan", "--kommo-domain", kommoURL, "--json")
	require.Equal(t, ExitOK, code, errOut)
	var res connectResult
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, accountAmojo, res.AccountID)
	require.Equal(t, cliScope, res.ScopeID)
	require.Contains(t, errOut, "amojo_id "+accountAmojo)
	require.EqualValues(t, 1, fake.requests.Load())
	require.NotContains(t, out+errOut, kommoToken)
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	vars := connectEnv(t)
	_, kommoURL := newFakeKommo(t)
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range vars {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name     string
		vars     map[string]string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{name: "unknown channel", vars: vars, args: []string{"--channel-id", "nope", "--account-id", accountAmojo},
			wantCode: ExitUsage, wantErr: []string{"404", "Try: the channel id \"nope\" is wrong or the channel is not registered"}},
		{name: "wrong secret", vars: with(envChannelSecret, "not-the-secret"), args: []string{"--channel-id", "chan", "--account-id", accountAmojo},
			wantCode: ExitOperator, wantErr: []string{"ORIGIN_INVALID_SIGNATURE", "Try: the channel secret does not belong to this channel"}},
		{name: "no secret", vars: with(envChannelSecret, ""), args: []string{"--channel-id", "chan", "--account-id", accountAmojo},
			wantCode: ExitUsage, wantErr: []string{"no channel secret"}},
		{name: "no channel", vars: vars, args: []string{"--account-id", accountAmojo},
			wantCode: ExitUsage, wantErr: []string{"--channel-id is required", "Try: "}},
		{name: "no account", vars: vars, args: []string{"--channel-id", "chan"},
			wantCode: ExitUsage, wantErr: []string{"give --account-id AMOJO_ID, or --kommo-domain", "Try: KOMMO_TOKEN=<long-lived token> kommo-import connect"}},
		{name: "numeric account id", vars: vars, args: []string{"--channel-id", "chan", "--account-id", "31337"},
			wantCode: ExitUsage, wantErr: []string{"looks like the numeric account id"}},
		{name: "lookup without token", vars: vars, args: []string{"--channel-id", "chan", "--kommo-domain", kommoURL},
			wantCode: ExitUsage, wantErr: []string{"--kommo-domain needs a token: set KOMMO_TOKEN"}},
		{name: "lookup with a refused token", vars: with(envKommoToken, "stale-"+kommoToken), args: []string{"--channel-id", "chan", "--kommo-domain", kommoURL},
			wantCode: ExitUsage, wantErr: []string{"401 Unauthorized: Invalid token", "Try: KOMMO_TOKEN was refused"}},
		{name: "lookup over plain http", vars: with(envKommoToken, kommoToken), args: []string{"--channel-id", "chan", "--kommo-domain", "http://acme.kommo.com"},
			wantCode: ExitUsage, wantErr: []string{"plain http"}},
		{name: "api unreachable", vars: with(envAPIURL, "http://127.0.0.1:1"), args: []string{"--channel-id", "chan", "--account-id", accountAmojo},
			wantCode: ExitFatal, wantErr: []string{"Try: could not reach the Chats API"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runWith(t, tt.vars, append([]string{"connect"}, tt.args...)...)
			require.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			require.Empty(t, out, "nothing on stdout: a script must not take an error for a scope")
			for _, s := range tt.wantErr {
				require.Contains(t, errOut, s)
			}
			require.NotContains(t, errOut, cliSecret)
			require.NotContains(t, errOut, kommoToken)
		})
	}
}

func TestConnectHelp(t *testing.T) {
	t.Parallel()
	out, _, code := runWith(t, map[string]string{}, "connect", "--help")
	require.Equal(t, ExitOK, code)
	for _, s := range []string{"-channel-id ID", "-account-id AMOJO_ID", "-kommo-domain SUBDOMAIN.kommo.com", "-env-file FILE", "KOMMO_TOKEN", "SCOPE=$(kommo-import connect"} {
		require.Contains(t, out, s)
	}
}

// agentsFile has outgoing messages by Dana (mapped by the users file's id),
// Oleg (by email, his Kommo user on the third page), Ivan (a Kommo user
// without amojo_id) and Ghost (nobody), and one incoming message.
func agentsFile(t *testing.T) string {
	t.Helper()
	line := func(n int, sender string) string {
		return fmt.Sprintf(`{"msgid":"g-%d","conversation_id":"conv-g","timestamp":%d,"sender":%s,"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"msg %d"}}`,
			n, 1709284502+n, sender, n)
	}
	lines := []string{
		`{"msgid":"g-0","conversation_id":"conv-g","timestamp":1709284502,"sender":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"hi"}}`,
		line(1, `{"id":"agent-dana","name":"Dana"}`),
		line(2, `{"id":"agent-oleg","name":"Oleg","profile":{"email":"oleg@acme.test"}}`),
		line(3, `{"id":"agent-ivan","name":"Ivan","profile":{"email":"ivan@acme.test"}}`),
		line(4, `{"id":"agent-ghost","name":"Ghost"}`),
		line(5, `{"id":"agent-ghost","name":"Ghost"}`),
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "agents.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "users.csv"), []byte("agent,amojo_id\nagent-dana,amojo-dana-file\n"), 0o644))
	return path
}

func TestValidateWithUsers(t *testing.T) {
	t.Parallel()
	fake, kommoURL := newFakeKommo(t)
	src := agentsFile(t)
	users := filepath.Join(filepath.Dir(src), "users.csv")
	vars := map[string]string{envKommoToken: kommoToken}

	out, errOut, code := runWith(t, vars, "validate", "--source", src, "--users", users, "--kommo-domain", kommoURL)
	require.Equal(t, ExitIncomplete, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, src+`: sender.ref_id: agent "agent-ivan" (ivan@acme.test) matches no Kommo user: Kommo user "Ivan" has no amojo_id; add them to --users or use --bot-id (1 record rejected: line 4)`)
	// One line per agent, with its count and first lines, not one per record.
	require.Contains(t, out, src+`: sender.ref_id: agent "agent-ghost" (Ghost) matches no Kommo user: add them to --users or use --bot-id (2 records rejected: lines 5, 6)`)
	require.Equal(t, 1, strings.Count(out, `"agent-ghost" (Ghost) matches no Kommo user`), out)
	require.Contains(t, out, "valid          3\n  rejected       3")
	require.Contains(t, out, "agents matching no Kommo user (2), their messages rejected")
	require.Regexp(t, `agent-ghost +Ghost +2 messages, first at line 5\n`, out)
	require.Regexp(t, `agent-ivan +Ivan <ivan@acme.test> +1 message, first at line 4\n`, out)
	require.EqualValues(t, 3, fake.requests.Load(), "five users in three pages")
	require.NotContains(t, out+errOut, kommoToken)

	out, errOut, code = runWith(t, vars, "validate", "--source", src, "--users", users, "--kommo-domain", kommoURL, "--bot-id", "bot-1", "--json")
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	var counts validateCounts
	require.NoError(t, json.Unmarshal([]byte(out), &counts))
	require.EqualValues(t, 6, counts.Valid)
	require.Len(t, counts.UnmatchedAgents, 2)
	require.Equal(t, "agent-ghost", counts.UnmatchedAgents[0].ID)
	require.EqualValues(t, 2, counts.UnmatchedAgents[0].Messages)
	require.True(t, counts.UnmatchedAgents[0].AsBot)

	// The sample's users file makes the messy sample's m-0007 valid.
	out, _, code = runWith(t, nil, "validate", "--source", messyCSV, "--users", "../../../testdata/users.csv")
	require.Equal(t, ExitIncomplete, code)
	require.Contains(t, out, "valid          7\n  rejected       18")

	_, errOut, code = runWith(t, nil, "validate", "--source", src, "--users", filepath.Join(filepath.Dir(src), "missing.csv"))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--users: users file:")

	out, _, code = runWith(t, nil, "validate", "--help")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "-users FILE")
	require.Contains(t, out, "-bot-id ID")
}

func TestRunSendsManagersUnderTheirNames(t *testing.T) {
	c := newCLIEnv(t)
	_, kommoURL := newFakeKommo(t)
	c.vars[envKommoToken] = kommoToken
	src := agentsFile(t)
	users := filepath.Join(filepath.Dir(src), "users.csv")
	out, errOut, code := c.run(t, "run", "--source", src, "--rate", "unlimited", "--progress", "none",
		"--users", users, "--kommo-domain", kommoURL, "--bot-id", "bot-1")
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	refs := map[string]string{}
	for _, e := range c.sim.Ledger() {
		var p struct {
			Sender struct {
				RefID string `json:"ref_id"`
			} `json:"sender"`
		}
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		refs[e.MsgID] = p.Sender.RefID
	}
	require.Equal(t, map[string]string{
		"g-0": "", "g-1": "amojo-dana-file", "g-2": "amojo-oleg", "g-3": "bot-1", "g-4": "bot-1", "g-5": "bot-1",
	}, refs)
	require.NotContains(t, out+errOut, kommoToken)
}

// TestUsersLookUpWaitsOutA429: the main API's 429 at the users look-up (a
// contacts plan or another process spent the account's requests a moment
// before) is waited out, said on stderr, not an exit 1 (it was, seen in
// TestE2EContactsRateLimitedAndRefused).
func TestUsersLookUpWaitsOutA429(t *testing.T) {
	t.Parallel()
	fake, kommoURL := newFakeKommo(t)
	fake.limited.Store(2)
	src := agentsFile(t)
	vars := map[string]string{envKommoToken: kommoToken}
	out, errOut, code := runWith(t, vars, "validate", "--source", src, "--kommo-domain", kommoURL, "--bot-id", "bot-1")
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Equal(t, 2, strings.Count(errOut, "429 Too Many Requests"), errOut)
	require.Contains(t, errOut, "trying again in 1s")
	require.EqualValues(t, 2+3, fake.requests.Load(), "two refused, then the three pages")

	// A 401 is not tried again.
	fake.requests.Store(0)
	_, errOut, code = runWith(t, map[string]string{envKommoToken: "wrong"}, "validate", "--source", src, "--kommo-domain", kommoURL, "--bot-id", "bot-1")
	require.Equal(t, ExitUsage, code, errOut)
	require.EqualValues(t, 1, fake.requests.Load())
}
