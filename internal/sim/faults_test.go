package sim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec    string
		want    Faults
		wantErr string
	}{
		{spec: "", want: Faults{}},
		{spec: "none", want: Faults{}},
		{spec: "500=0.02,503=0.02,429=0.01,hang=0.01,accept-500=0.02,accept-drop=0.01",
			want: Faults{"500": 0.02, "503": 0.02, "429": 0.01, "hang": 0.01, "accept-500": 0.02, "accept-drop": 0.01}},
		{spec: " 500 = 0.5 , ", want: Faults{"500": 0.5}},
		{spec: "500=1", want: Faults{"500": 1}},
		{spec: "404=0.1", wantErr: `unknown kind "404"`},
		{spec: "500", wantErr: "want kind=probability"},
		{spec: "500=x", wantErr: "probability must be a number in [0,1]"},
		{spec: "500=1.5", wantErr: "probability must be a number in [0,1]"},
		{spec: "500=-0.1", wantErr: "probability must be a number in [0,1]"},
		{spec: "500=0.6,503=0.6", wantErr: "sum to 1.2"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseFaults(tc.spec)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := ParseFaults(got.String())
			require.NoError(t, err)
			require.Equal(t, got, again, "String round-trips")
		})
	}
}

func mustFaults(t *testing.T, spec string) Faults {
	t.Helper()
	f, err := ParseFaults(spec)
	require.NoError(t, err)
	return f
}

func TestFaultKinds(t *testing.T) {
	tests := []struct {
		spec       string
		status     int
		recorded   bool
		bodyPrefix string
	}{
		{spec: "500=1", status: 500, bodyPrefix: `{"title":"ErrInternalServer","status":500`},
		{spec: "503=1", status: 503, bodyPrefix: `{"title":"Service Unavailable"`},
		{spec: "429=1", status: 429, bodyPrefix: `{"title":"Too Many Requests","type":"https://httpstatus.es/429","status":429,"detail":"injected fault","retry_after":1}`},
		{spec: "accept-500=1", status: 500, recorded: true, bodyPrefix: `{"title":"ErrInternalServer"`},
		{spec: "hang=1", status: 504, bodyPrefix: `{"title":"Gateway Timeout"`}, // Hang is short here: it runs out
		{spec: "400=1", status: 400, bodyPrefix: `{"status":0,"error_code":400,"error_type":"INVALID_DATA","error_description":"injected fault: refused"}`},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			e := newEnv(t, Options{Faults: mustFaults(t, tc.spec), Hang: 50 * time.Millisecond})
			resp, b := e.send(msgBody("m-1", "conv-1", 1000_000))
			require.Equal(t, tc.status, resp.StatusCode, "body: %s", b)
			require.True(t, strings.HasPrefix(string(b), tc.bodyPrefix), "body: %s", b)
			if tc.status == 429 {
				require.Equal(t, "1", resp.Header.Get("Retry-After"))
			}
			require.Equal(t, tc.recorded, len(e.sim.Ledger()) == 1)
			st := e.sim.Stats()
			kind, _, _ := strings.Cut(tc.spec, "=")
			require.Equal(t, int64(1), st.Faults[kind])
			require.Equal(t, int64(0), st.RateLimited, "injected 429s are not rate-limit 429s")

			// A fault that ends before processing is not a refusal of the
			// payload: the same request later succeeds.
			require.NoError(t, e.sim.SetFaults(nil, nil))
			resp, _ = e.send(msgBody("m-1", "conv-1", 1000_000))
			require.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
}

func TestFaultHangCutByClient(t *testing.T) {
	e := newEnv(t, Options{Faults: mustFaults(t, "hang=1"), Hang: time.Minute})
	client := &http.Client{Timeout: 200 * time.Millisecond}
	_, err := client.Do(e.request(http.MethodPost, sendPath, msgBody("m-1", "conv-1", 1000_000), nil))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	// The simulator notices the client left and gives up the request.
	require.Eventually(t, func() bool { return e.sim.Stats().ByStatus["none"] == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Empty(t, e.sim.Ledger())
}

func TestFaultAcceptDropClosesConnection(t *testing.T) {
	e := newEnv(t, Options{Faults: mustFaults(t, "accept-drop=1")})

	// Through net/http: the client sees the connection end without an answer.
	_, err := e.ts.Client().Do(e.request(http.MethodPost, sendPath, msgBody("m-1", "conv-1", 1000_000), nil))
	require.Error(t, err)
	require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF"), "err: %v", err)

	// On the wire: the request is written, not one byte comes back, and the peer closed.
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, e.request(http.MethodPost, sendPath, msgBody("m-2", "conv-1", 1000_000), nil).Write(conn))
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	got, err := io.ReadAll(conn)
	require.NoError(t, err, "EOF, not a timeout")
	require.Empty(t, got)

	led := e.sim.Ledger()
	require.Len(t, led, 2, "both messages were accepted before the drop")
	require.Equal(t, []string{"m-1", "m-2"}, []string{led[0].MsgID, led[1].MsgID})
	// The handler counts a drop after the client sees it (as TestCRMFaults
	// waits for): a fresh-clone .ci/run under -race read 1 here.
	require.Eventually(t, func() bool { return e.sim.Stats().ByStatus["dropped"] == 2 }, 5*time.Second, 5*time.Millisecond,
		"dropped: %d", e.sim.Stats().ByStatus["dropped"])
}

func TestFaultLatency(t *testing.T) {
	e := newEnv(t, Options{Latency: 150 * time.Millisecond, Jitter: 10 * time.Millisecond})
	start := time.Now()
	resp, _ := e.send(msgBody("m-1", "conv-1", 1000_000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
}

func TestFaultsByEndpoint(t *testing.T) {
	chatBody := []byte(`{"conversation_id":"conv-1","user":{"id":"u","name":"n"}}`)
	for _, spec := range []string{"429=1", "accept-500=1", "accept-drop=1"} {
		e := newEnv(t, Options{Faults: mustFaults(t, spec)})
		resp, b := e.do(http.MethodPost, chatPath, chatBody, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s does not apply to create chat", spec)
		resp, _ = e.do(http.MethodGet, historyPath(decode[createChatResult](t, b).ID, ""), nil, nil)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "%s does not apply to history", spec)
	}
	for _, spec := range []string{"500=1", "503=1"} {
		e := newEnv(t, Options{Faults: mustFaults(t, spec)})
		resp, _ := e.do(http.MethodPost, chatPath, chatBody, nil)
		require.GreaterOrEqual(t, resp.StatusCode, 500, spec)
		resp, _ = e.do(http.MethodGet, historyPath("x", ""), nil, nil)
		require.GreaterOrEqual(t, resp.StatusCode, 500, spec)
		_, ok := e.sim.ChatID("conv-1")
		require.False(t, ok, "a 5xx before processing creates nothing")
	}
	e := newEnv(t, Options{Faults: mustFaults(t, "hang=1"), Hang: 20 * time.Millisecond})
	resp, _ := e.do(http.MethodGet, historyPath("x", ""), nil, nil)
	require.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	// connect takes no faults.
	resp, _ = e.do(http.MethodPost, "/v2/origin/custom/"+testChannel+"/connect", []byte(`{"account_id":"a"}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// outcomes sends n messages one after another and returns what each got.
func outcomes(t *testing.T, e *env, n int, prefix string) []string {
	t.Helper()
	var out []string
	for i := range n {
		resp, err := e.ts.Client().Do(e.request(http.MethodPost, sendPath, msgBody(fmt.Sprintf("%s-%d", prefix, i), "conv-1", 1000_000), nil))
		if err != nil {
			out = append(out, "error")
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, fmt.Sprint(resp.StatusCode))
	}
	return out
}

func TestFaultsDeterministic(t *testing.T) {
	spec := mustFaults(t, "500=0.15,503=0.1,429=0.1,accept-500=0.1,accept-drop=0.1")
	run := func(seed int64) ([]string, []string) {
		e := newEnv(t, Options{Faults: spec, Seed: seed})
		got := outcomes(t, e, 40, "m")
		var ids []string
		for _, l := range e.sim.Ledger() {
			ids = append(ids, l.MsgID+"="+l.KommoMsgID)
		}
		return got, ids
	}
	a, ledA := run(42)
	b, ledB := run(42)
	require.Equal(t, a, b, "same seed, same faults")
	require.Equal(t, ledA, ledB, "same seed, same Kommo ids")
	c, _ := run(43)
	require.NotEqual(t, a, c, "another seed, other faults")
	for _, want := range []string{"200", "500", "503", "429", "error"} {
		require.Contains(t, a, want)
	}

	// POST /_sim/faults with the seed replays the sequence on a running sim.
	e := newEnv(t, Options{})
	body, err := json.Marshal(FaultsRequest{Spec: spec.String(), Seed: ptr(int64(42))})
	require.NoError(t, err)
	resp, err := http.Post(e.ts.URL+"/_sim/faults", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, a, outcomes(t, e, 40, "x"))
	require.Equal(t, spec.String(), e.sim.Stats().FaultSpec)

	resp, err = http.Post(e.ts.URL+"/_sim/faults", "application/json", strings.NewReader(`{"spec":"bogus=1"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func ptr[T any](v T) *T { return &v }

func TestLedgerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	defer f.Close()
	bw := bufio.NewWriter(f) // must be flushed per line by the simulator
	e := newEnv(t, Options{Ledger: bw, IdempotentMsgID: false})
	for i, msgid := range []string{"m-1", "m-2", "m-1"} {
		p := payload(msgid, "conv-1", int64(1000_000+i*1000), i != 1)
		p["message"] = map[string]any{"type": "text", "text": "Привет <b>&"}
		resp, b := e.send(event(p))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	}
	e.send([]byte(`{"event_type":"new_message"}`)) // refused: not in the ledger

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.Len(t, lines, 3)
	mem := e.sim.Ledger()
	for i, line := range lines {
		var got LedgerEntry
		require.NoError(t, json.Unmarshal([]byte(line), &got))
		require.Equal(t, int64(i+1), got.Seq)
		require.Equal(t, mem[i].KommoMsgID, got.KommoMsgID)
		require.Equal(t, mem[i].ReceivedAt.UnixNano(), got.ReceivedAt.UnixNano())
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(line), &fields))
		for _, k := range []string{"seq", "received_at", "scope_id", "conversation_id", "chat_id", "msgid", "kommo_msgid", "silent", "msec_timestamp", "duplicate", "payload"} {
			require.Contains(t, fields, k)
		}
		var ts string
		require.NoError(t, json.Unmarshal(fields["received_at"], &ts))
		_, err := time.Parse(time.RFC3339Nano, ts)
		require.NoError(t, err)
		var p map[string]any
		require.NoError(t, json.Unmarshal(got.Payload, &p))
		require.Equal(t, got.MsgID, p["msgid"])
		require.Equal(t, "Привет <b>&", p["message"].(map[string]any)["text"])
	}
	require.Equal(t, []bool{true, false, true}, []bool{mem[0].Silent, mem[1].Silent, mem[2].Silent})
	require.Equal(t, []bool{false, false, true}, []bool{mem[0].Duplicate, mem[1].Duplicate, mem[2].Duplicate})
}

func TestControlEndpoints(t *testing.T) {
	e := newEnv(t, Options{Faults: mustFaults(t, "503=0.5")})
	e.send(msgBody("m-1", "conv-1", 1000_000))
	resp, err := http.Get(e.ts.URL + "/_sim/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Date"))
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	for _, k := range []string{"requests", "by_endpoint", "by_status", "accepted", "duplicates", "rejected_signature",
		"rejected_invalid", "rate_limited", "faults", "blocked", "max_requests_in_any_1s"} {
		require.Contains(t, st, k)
	}
	require.Equal(t, float64(1), st["requests"])
	require.Equal(t, "503=0.5", st["fault_spec"])

	resp2, err := http.Get(e.ts.URL + "/_sim/ledger")
	require.NoError(t, err)
	defer resp2.Body.Close()
	var led []LedgerEntry
	require.NoError(t, json.NewDecoder(resp2.Body).Decode(&led))
	require.Len(t, led, len(e.sim.Ledger()))
	for i, l := range e.sim.Ledger() {
		require.Equal(t, l.KommoMsgID, led[i].KommoMsgID)
	}

	resp3, err := http.Get(e.ts.URL + "/_sim/nope")
	require.NoError(t, err)
	resp3.Body.Close()
	require.Equal(t, http.StatusNotFound, resp3.StatusCode)
	require.Equal(t, int64(1), e.sim.Stats().Requests, "control requests are not API requests")
}
