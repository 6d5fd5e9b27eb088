package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

// frontedEnv is a cliEnv whose simulator sits behind a test handler that
// can refuse chosen msgids (400) and drop chosen entries from history.
type frontedEnv struct {
	*cliEnv
	front *front
}

type front struct {
	next http.Handler

	mu     sync.Mutex
	refuse map[string]bool // new_message msgids answered 400
	drop   map[string]bool // client_ids left out of history
}

func (f *front) set(refuse, drop map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse, f.drop = refuse, drop
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	refuse, drop := f.refuse, f.drop
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v2/origin/custom/"+cliScope:
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var ev struct {
			Payload struct {
				MsgID string `json:"msgid"`
			} `json:"payload"`
		}
		_ = json.Unmarshal(body, &ev)
		if refuse[ev.Payload.MsgID] {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error_code":400,"error_type":"INVALID_DATA","error_description":"message.text: refused for %s"}`+"\n", ev.Payload.MsgID)
			return
		}
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/history") && len(drop) > 0:
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r)
		var body struct {
			Messages []map[string]any `json:"messages"`
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		kept := body.Messages[:0]
		for _, m := range body.Messages {
			if msg, _ := m["message"].(map[string]any); !drop[fmt.Sprint(msg["client_id"])] {
				kept = append(kept, m)
			}
		}
		body.Messages = kept
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	f.next.ServeHTTP(w, r)
}

func newFrontedEnv(t *testing.T, opts sim.Options) *frontedEnv {
	t.Helper()
	opts.ScopeID, opts.Secret = cliScope, cliSecret
	s, err := sim.New(opts)
	require.NoError(t, err)
	f := &front{next: s}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &frontedEnv{front: f, cliEnv: &cliEnv{sim: s, vars: map[string]string{
		envDatabaseURL: pgtest.URL(t), envScopeID: cliScope, envAPIURL: srv.URL, envChannelSecret: cliSecret,
	}}}
}

// checkOnceAndLoud asserts that the simulator got every message once and, in
// each conversation, exactly its newest one loud.
func checkOnceAndLoud(t *testing.T, entries []sim.LedgerEntry, total int) {
	t.Helper()
	require.Len(t, entries, total)
	seen := map[string]bool{}
	newest := map[string]sim.LedgerEntry{}
	loud := map[string][]string{}
	for _, e := range entries {
		require.False(t, seen[e.MsgID], "%s delivered twice", e.MsgID)
		seen[e.MsgID] = true
		if n, ok := newest[e.ConversationID]; !ok || e.MsecTimestamp > n.MsecTimestamp {
			newest[e.ConversationID] = e
		}
		if !e.Silent {
			loud[e.ConversationID] = append(loud[e.ConversationID], e.MsgID)
		}
	}
	for conv, n := range newest {
		require.Equal(t, []string{n.MsgID}, loud[conv], "loud messages of %s", conv)
	}
}

func TestRetryReportVerifyCommands(t *testing.T) {
	c := newFrontedEnv(t, sim.Options{})
	// m-0004 is the newest of conv-anna-001 (its loud one), m-0006 from the middle of conv-boris-002.
	c.front.set(map[string]bool{"m-0004": true, "m-0006": true}, nil)
	// --on-failure continue: the messages after m-0006 go out without it
	// (the default holds them; importer's TestAFailedMessageHolds... covers it).
	_, errOut, code := c.run(t, "run", "--run", "r1", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--on-failure", "continue")
	require.Equal(t, ExitIncomplete, code, errOut)
	require.Len(t, c.sim.Ledger(), 12)

	t.Run("report text", func(t *testing.T) {
		out, errOut, code := c.run(t, "report", "--run", "r1", "--format", "text")
		require.Equal(t, ExitIncomplete, code, errOut)
		require.Contains(t, out, "Failed messages (refused by the API):\n")
		require.Regexp(t, `line \d+  msgid m-0004  conversation conv-anna-001  1 attempt\n      send message: 400 INVALID_DATA: message.text: refused for m-0004`, out)
		require.Contains(t, out, "msgid m-0006  conversation conv-boris-002")
		require.Contains(t, out, "2 failed messages, 0 rejected records")
		require.Contains(t, errOut, "kommo-import retry --run r1")
	})
	t.Run("report jsonl by default when piped", func(t *testing.T) {
		out, _, code := c.run(t, "report", "--run", "r1")
		require.Equal(t, ExitIncomplete, code)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
		require.Equal(t, "failed", m["kind"])
		require.Equal(t, "conv-anna-001", m["conversation_id"])
		require.EqualValues(t, 1, m["attempts"])
		require.Contains(t, m["last_error"], "refused for m-0004")
	})
	t.Run("report csv to a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "failures.csv")
		out, _, code := c.run(t, "report", "--run", "r1", "--output", path)
		require.Equal(t, ExitIncomplete, code)
		require.Empty(t, out)
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 3)
		require.Equal(t, reportColumns, rows[0])
		require.Equal(t, []string{"failed", rows[1][1], "m-0004", "conv-anna-001", "1", ""}, rows[1][:6])
		require.Contains(t, rows[1][6], "refused for m-0004")
	})

	// The cause is fixed: retry sends the two, once, and the newest of anna loud.
	c.front.set(nil, nil)
	out, errOut, code := c.run(t, "retry", "--run", "r1", "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "run r1 (scope "+cliScope+"): done")
	require.Contains(t, out, "sent:                14 (2 now)")
	checkOnceAndLoud(t, c.sim.Ledger(), 14)
	require.NotContains(t, out+errOut, cliSecret)

	out, _, code = c.run(t, "report", "--run", "r1", "--format", "text")
	require.Equal(t, ExitOK, code)
	require.Equal(t, "No failed messages and no rejected records.\n", out)
	out, _, code = c.run(t, "report", "--run", "r1", "--format", "csv")
	require.Equal(t, ExitOK, code)
	require.Equal(t, strings.Join(reportColumns, ",")+"\n", out)

	// Retrying again sends nothing.
	out, errOut, code = c.run(t, "retry", "--run", "r1", "--rate", "unlimited", "--progress", "none", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var sum map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.EqualValues(t, 0, sum["sent_now"])
	require.Len(t, c.sim.Ledger(), 14)

	t.Run("verify clean", func(t *testing.T) {
		out, errOut, code := c.run(t, "verify", "--run", "r1", "--rate", "unlimited")
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, "verify run r1: clean\n")
		require.Contains(t, out, "3 checked (all of 3 with sent messages)")
		require.Contains(t, out, "14 checked, 14 found once, 0 missing, 0 duplicated")
		require.Contains(t, out, "HTTP requests:  3 in ")
		// --json: the empty lists are [], not null.
		out, errOut, code = c.run(t, "verify", "--run", "r1", "--rate", "unlimited", "--json")
		require.Equal(t, ExitOK, code, errOut)
		var rep map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		for _, k := range []string{"missing", "duplicated", "unexpected"} {
			require.Equal(t, []any{}, rep[k], "%s: %s", k, out)
		}
	})
	t.Run("verify finds a lost message", func(t *testing.T) {
		c.front.set(nil, map[string]bool{"m-0002": true})
		defer c.front.set(nil, nil)
		// (--mark=false: the message is not lost, the filter only hides it.)
		out, errOut, code := c.run(t, "verify", "--run", "r1", "--rate", "unlimited", "--json", "--reconcile-wait", "100ms", "--mark=false")
		require.Equal(t, ExitIncomplete, code, errOut)
		require.Contains(t, errOut, "1 missing, 0 duplicated, 0 out of order, 0 unexpected")
		var rep struct {
			Missing []struct {
				MsgID          string `json:"msgid"`
				ConversationID string `json:"conversation_id"`
			} `json:"missing"`
			Requests int `json:"http_requests"`
			Found    int `json:"found_once"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &rep))
		require.Len(t, rep.Missing, 1)
		require.Equal(t, "m-0002", rep.Missing[0].MsgID)
		require.Equal(t, "conv-anna-001", rep.Missing[0].ConversationID)
		require.Equal(t, 13, rep.Found)
		require.Equal(t, 3, rep.Requests)

		out, _, code = c.run(t, "verify", "--run", "r1", "--rate", "unlimited", "--reconcile-wait", "100ms", "--mark=false")
		require.Equal(t, ExitIncomplete, code)
		require.Contains(t, out, "verify run r1: NOT clean\n")
		require.Contains(t, out, "missing\tmsgid m-0002\tconversation conv-anna-001\tchat ")
	})
	t.Run("verify a sample", func(t *testing.T) {
		out, errOut, code := c.run(t, "verify", "--run", "r1", "--rate", "unlimited", "--sample", "1")
		require.Equal(t, ExitOK, code, errOut)
		require.Contains(t, out, "1 checked (a sample of 1 of 3 with sent messages)")
	})
}

func TestRetryReportVerifyUsageErrors(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "run", "--run", "r1", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"report needs a run", []string{"report"}, "--run is required"},
		{"report of an unknown run", []string{"report", "--run", "nope"}, `no such run "nope"`},
		{"report format", []string{"report", "--run", "r1", "--format", "xml"}, "--format must be text, csv or jsonl"},
		{"retry needs a run", []string{"retry"}, "--run is required"},
		{"retry of an unknown run", []string{"retry", "--run", "nope"}, `no such run "nope"`},
		{"retry in another scope", []string{"retry", "--run", "r1", "--scope-id", "other_scope"}, "belongs to scope " + cliScope},
		{"retry rate", []string{"retry", "--run", "r1", "--rate", "0"}, "--rate 0: must be above 0"},
		{"verify needs a run", []string{"verify"}, "--run is required"},
		{"verify sample", []string{"verify", "--run", "r1", "--sample", "-2"}, "--sample -2: must be 0 to"},
		{"verify metrics address", []string{"verify", "--run", "r1", "--metrics-addr", "256.0.0.1:x"}, "--metrics-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := c.run(t, tt.args...)
			require.Equal(t, ExitUsage, code, errOut)
			require.Contains(t, errOut, tt.wantErr)
			require.NotContains(t, errOut, cliSecret)
		})
	}
	for _, cmd := range []string{"report", "retry", "verify"} {
		out, _, code := c.run(t, cmd, "--help")
		require.Equal(t, ExitOK, code)
		require.Contains(t, out, "Usage: kommo-import "+cmd)
		if cmd != "report" {
			require.Contains(t, out, "-metrics-addr")
			require.Contains(t, out, "-channel-secret-file")
		}
	}
}

func TestRetryOfARunStillStaging(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "migrate")
	require.Equal(t, ExitOK, code, errOut)
	pool, err := importer.Connect(context.Background(), c.vars[envDatabaseURL], 2)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(),
		`INSERT INTO kommo_import_runs (name, scope_id, source, notify, rate) VALUES ('half', $1, 'jsonl:x', 'newest', 5)`, cliScope)
	require.NoError(t, err)
	_, errOut, code = c.run(t, "retry", "--run", "half", "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "has not finished staging")
	require.Contains(t, errOut, "Try: resume it with kommo-import run --run half")
}
