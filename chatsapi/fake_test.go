package chatsapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/wire"
)

// testSecret is distinctive so a leak into any error string is easy to spot.
const testSecret = signer.Secret("s3cr3t-channel-key-0123456789abcdef")

// recorded is one request as the fake API received it.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// fakeAPI is a strict stand-in for amojo: every request must carry a valid
// signature over the exact body bytes received, or the test fails.
type fakeAPI struct {
	t      *testing.T
	secret signer.Secret
	now    func() time.Time // the server's clock for signer.Verify
	srv    *httptest.Server

	mu      sync.Mutex
	reqs    []recorded
	handler http.HandlerFunc // nil: answer like the real API would on success
}

func newFake(t *testing.T, h http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, secret: testSecret, now: time.Now, handler: h}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake: read body: %v", err)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
	h := f.handler
	f.mu.Unlock()

	if got, want := r.Header.Get("Content-MD5"), signer.BodyMD5(body); got != want {
		f.t.Errorf("fake: Content-MD5 %s, md5 of the body received %s", got, want)
	}
	if err := signer.Verify(r.Method, r.URL.EscapedPath(), body, r.Header, f.secret, f.now()); err != nil {
		f.t.Errorf("fake: %s %s: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusForbidden, `{"status":0,"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE","error_description":"invalid signature"}`)
		return
	}
	if h != nil {
		h(w, r)
		return
	}
	f.success(w, r, body)
}

// success answers each endpoint the way the documentation shows.
func (f *fakeAPI) success(w http.ResponseWriter, r *http.Request, body []byte) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/history"):
		writeJSON(w, http.StatusOK, `{"messages":[
			{"timestamp":1700000001,"msec_timestamp":1700000001123,
			 "sender":{"id":"amo-u-1","client_id":"ext-u-1","name":"Zoë"},
			 "message":{"id":"amo-m-2","client_id":"ext-43","type":"text","text":"second"}},
			{"timestamp":1700000000,"msec_timestamp":1700000000123,
			 "sender":{"id":"amo-u-1","client_id":"ext-u-1","name":"Zoë"},
			 "receiver":{"id":"amo-u-2","name":"Manager"},
			 "message":{"id":"amo-m-1","client_id":"ext-42","type":"location","location":{"lon":1.5,"lat":2.5}}}]}`)
	case strings.HasSuffix(path, "/connect"):
		var req struct {
			AccountID string `json:"account_id"`
			Title     string `json:"title"`
			Hook      string `json:"hook_api_version"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			f.t.Errorf("fake: connect body: %v", err)
		}
		channel := strings.TrimSuffix(strings.TrimPrefix(path, "/v2/origin/custom/"), "/connect")
		out, _ := json.Marshal(map[string]any{
			"account_id": req.AccountID, "scope_id": channel + "_" + req.AccountID,
			"title": req.Title, "hook_api_version": req.Hook, "is_time_window_disabled": false,
		})
		writeJSON(w, http.StatusOK, string(out))
	case strings.HasSuffix(path, "/chats"):
		writeJSON(w, http.StatusOK, `{"id":"6cbab3d5-c4c1-46ff-b710-ad59ad10805f","user":{"id":"amo-user-9","client_id":"u-1","name":"Ann"}}`)
	default:
		var ev wire.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			f.t.Errorf("fake: new_message body: %v", err)
		}
		out, _ := json.Marshal(map[string]any{"new_message": map[string]any{
			"conversation_id": "amo-chat-1", "sender_id": "amo-sender-1", "receiver_id": nil,
			"msgid": "amo-" + ev.Payload.MsgID, "ref_id": ev.Payload.MsgID,
		}})
		writeJSON(w, http.StatusOK, string(out))
	}
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// stepClock advances by step on every Now, so each signature gets its own Date.
type stepClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *stepClock) Peek() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func newClient(t *testing.T, baseURL string, mod func(*chatsapi.Config)) *chatsapi.Client {
	t.Helper()
	cfg := chatsapi.Config{BaseURL: baseURL, ScopeID: "scope-1", Secret: testSecret, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := chatsapi.New(cfg)
	require.NoError(t, err)
	return c
}

func textPayload(msgid, text string) *wire.Payload {
	return &wire.Payload{
		Timestamp: 1700000000, MsecTimestamp: 1700000000123,
		MsgID: msgid, ConversationID: "ext-c-7",
		Sender:  &wire.Participant{ID: "ext-u-1", Name: "Client"},
		Message: &wire.Message{Type: wire.TypeText, Text: text},
		Silent:  true,
	}
}
