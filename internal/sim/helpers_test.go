package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/signer"
)

const (
	testScope   = "f90ba33d-c9d9-44da-b76c-c349b0ecbe41_af9945ff-1490-4cad-807d-945c15d88bec"
	testChannel = "f90ba33d-c9d9-44da-b76c-c349b0ecbe41"
	testSecret  = signer.Secret("5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189")

	sigRefusal   = `{"status":0,"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE","error_description":"invalid signature"}`
	scopeRefusal = `{"status":0,"error_code":404,"error_type":"ORIGIN_NOT_REGISTERED","error_description":"NOT_FOUND"}`
)

var (
	sendPath = "/v2/origin/custom/" + testScope
	chatPath = sendPath + "/chats"
)

// fakeClock is a settable clock for the simulator and the signer alike.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t   *testing.T
	sim *Server
	ts  *httptest.Server
	now func() time.Time
}

// newEnv starts the simulator behind a real HTTP server. Rate limiting is
// off unless opts says otherwise.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	if opts.ScopeID == "" {
		opts.ScopeID = testScope
	}
	if opts.Secret == "" {
		opts.Secret = testSecret
	}
	sim, err := New(opts)
	require.NoError(t, err)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &env{t: t, sim: sim, ts: ts, now: now}
}

// request builds a request signed the documented way; mutate may spoil it after signing.
func (e *env) request(method, path string, body []byte, mutate func(*http.Request)) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	require.NoError(e.t, err)
	signer.Sign(method, pathOnly(path), body, testSecret, e.now()).Apply(req.Header)
	if mutate != nil {
		mutate(req)
	}
	return req
}

func pathOnly(p string) string {
	for i := range len(p) {
		if p[i] == '?' {
			return p[:i]
		}
	}
	return p
}

// do sends a signed request and returns the response with its body read.
func (e *env) do(method, path string, body []byte, mutate func(*http.Request)) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := e.ts.Client().Do(e.request(method, path, body, mutate))
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, b
}

func (e *env) send(body []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(http.MethodPost, sendPath, body, nil)
}

// payload returns a valid incoming text message for conversation conv.
func payload(msgid, conv string, msec int64, silent bool) map[string]any {
	return map[string]any{
		"timestamp":       msec / 1000,
		"msec_timestamp":  msec,
		"msgid":           msgid,
		"conversation_id": conv,
		"sender":          map[string]any{"id": "client-" + conv, "name": "Client " + conv},
		"message":         map[string]any{"type": "text", "text": "hello " + msgid},
		"silent":          silent,
	}
}

func event(p map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"event_type": "new_message", "payload": p})
	if err != nil {
		panic(err)
	}
	return b
}

func msgBody(msgid, conv string, msec int64) []byte {
	return event(payload(msgid, conv, msec, true))
}

type sendResult struct {
	NewMessage struct {
		ConversationID string  `json:"conversation_id"`
		SenderID       string  `json:"sender_id"`
		ReceiverID     *string `json:"receiver_id"`
		MsgID          string  `json:"msgid"`
		RefID          string  `json:"ref_id"`
	} `json:"new_message"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(b, &v), "body: %s", b)
	return v
}

func historyPath(chatID string, query string) string {
	p := fmt.Sprintf("%s/chats/%s/history", sendPath, chatID)
	if query != "" {
		p += "?" + query
	}
	return p
}

type historyResp struct {
	Messages []struct {
		Timestamp     int64 `json:"timestamp"`
		MsecTimestamp int64 `json:"msec_timestamp"`
		Sender        struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
			Name     string `json:"name"`
		} `json:"sender"`
		Receiver *struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
			Name     string `json:"name"`
		} `json:"receiver"`
		Message struct {
			ID       string `json:"id"`
			ClientID string `json:"client_id"`
			Type     string `json:"type"`
			Text     string `json:"text"`
		} `json:"message"`
	} `json:"messages"`
}

func clientIDs(h historyResp) []string {
	var ids []string
	for _, m := range h.Messages {
		ids = append(ids, m.Message.ClientID)
	}
	return ids
}
