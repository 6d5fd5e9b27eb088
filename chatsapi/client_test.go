package chatsapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/wire"
)

type vector struct {
	Name       string `json:"name"`
	Secret     string `json:"secret"`
	Method     string `json:"method"`
	Path       string `json:"path"`
	Date       string `json:"date"`
	Body       string `json:"body"`
	ContentMD5 string `json:"content_md5"`
	XSignature string `json:"x_signature"`
}

func loadVector(t *testing.T, name string) vector {
	t.Helper()
	raw, err := os.ReadFile("../signer/testdata/signature-vectors.json")
	require.NoError(t, err)
	var vs []vector
	require.NoError(t, json.Unmarshal(raw, &vs))
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no vector %q", name)
	return vector{}
}

// vectorFake serves a fake whose secret and clock are those of vector v.
func vectorFake(t *testing.T, v vector) (*fakeAPI, time.Time) {
	t.Helper()
	at, err := signer.ParseDate(v.Date)
	require.NoError(t, err)
	f := newFake(t, nil)
	f.secret = signer.Secret(v.Secret)
	f.now = func() time.Time { return at }
	return f, at
}

func requireVectorRequest(t *testing.T, v vector, got recorded) {
	t.Helper()
	require.Equal(t, v.Method, got.Method)
	require.Equal(t, v.Path, got.Path)
	require.Equal(t, v.Body, string(got.Body))
	require.Equal(t, v.Date, got.Header.Get("Date"))
	require.Equal(t, v.ContentMD5, got.Header.Get("Content-MD5"))
	require.Equal(t, v.XSignature, got.Header.Get("X-Signature"))
	require.Equal(t, "application/json", got.Header.Get("Content-Type"))
}

// v3Payload is the payload of vectors V3 and V5, as a source would yield it.
func v3Payload() wire.Payload {
	return wire.Payload{
		Timestamp: 1639604761, MsecTimestamp: 1639604761694,
		MsgID: "my_int-5f2836a8ca475", ConversationID: "my_int-d5a421f7f217",
		Sender:  &wire.Participant{ID: "my_int-1376265f-86df-4c49-a0c3-a4816df41af8", Name: "Client"},
		Message: &wire.Message{Type: wire.TypeText, Text: "Hello"},
		Silent:  true,
	}
}

func TestEventMarshalMatchesVectors(t *testing.T) {
	v4 := v3Payload()
	v4.MsgID = "my_int-5f2836a8ca476"
	v4.Sender = &wire.Participant{ID: "my_int-1376265f-86df-4c49-a0c3-a4816df41af8", Name: "Вася"}
	v4.Message = &wire.Message{Type: wire.TypeText, Text: "Привет"}
	v4.Silent = false
	for name, p := range map[string]wire.Payload{"V3": v3Payload(), "V4": v4} {
		t.Run(name, func(t *testing.T) {
			got, err := json.Marshal(wire.Event{EventType: wire.EventNewMessage, Payload: p})
			require.NoError(t, err)
			require.Equal(t, loadVector(t, name).Body, string(got))
		})
	}
}

func TestSendMessageVectorV3(t *testing.T) {
	v := loadVector(t, "V3")
	f, at := vectorFake(t, v)
	scope := strings.TrimPrefix(v.Path, "/v2/origin/custom/")
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) {
		cfg.ScopeID, cfg.Secret, cfg.Now = scope, signer.Secret(v.Secret), func() time.Time { return at }
	})
	p := v3Payload()
	res, err := c.SendMessage(context.Background(), &p)
	require.NoError(t, err)
	require.Equal(t, &chatsapi.SendResult{
		MsgID: "amo-my_int-5f2836a8ca475", ConversationID: "amo-chat-1", SenderID: "amo-sender-1", RefID: "my_int-5f2836a8ca475",
	}, res)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	requireVectorRequest(t, v, reqs[0])
}

func TestSendMessageVectorUnicode(t *testing.T) {
	v := loadVector(t, "unicode body utf-8")
	f, at := vectorFake(t, v)
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) {
		cfg.ScopeID, cfg.Secret, cfg.Now = "scope-abc", signer.Secret(v.Secret), func() time.Time { return at }
	})
	p := &wire.Payload{
		Timestamp: 1700000000, MsecTimestamp: 1700000000123, MsgID: "ext-42", ConversationID: "ext-c-7",
		Sender:  &wire.Participant{ID: "ext-u-1", Name: "Zoë Ødegård 山田"},
		Message: &wire.Message{Type: wire.TypeText, Text: "Привет, \"мир\" 👋\nline two"},
	}
	_, err := c.SendMessage(context.Background(), p)
	require.NoError(t, err)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	requireVectorRequest(t, v, reqs[0])
}

func TestConnectVector(t *testing.T) {
	v := loadVector(t, "connect")
	f, at := vectorFake(t, v)
	// Connect needs no scope id.
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) {
		cfg.ScopeID, cfg.Secret, cfg.Now = "", signer.Secret(v.Secret), func() time.Time { return at }
	})
	conn, err := c.Connect(context.Background(), "channel-123", "af9945ff-1490-4cad-807d-945c15d88bec", "History import")
	require.NoError(t, err)
	require.Equal(t, &chatsapi.Connection{
		ScopeID:   "channel-123_af9945ff-1490-4cad-807d-945c15d88bec",
		AccountID: "af9945ff-1490-4cad-807d-945c15d88bec", Title: "History import", HookAPIVersion: "v2",
	}, conn)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	requireVectorRequest(t, v, reqs[0])
}

func TestHistoryVector(t *testing.T) {
	v := loadVector(t, "GET with empty body")
	f, at := vectorFake(t, v)
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) {
		cfg.ScopeID, cfg.Secret, cfg.Now = "scope-abc", signer.Secret(v.Secret), func() time.Time { return at }
	})
	msgs, err := c.History(context.Background(), "ext-c-7", 0, 50)
	require.NoError(t, err)
	require.Equal(t, []chatsapi.HistoryMessage{
		{
			Timestamp: 1700000001, MsecTimestamp: 1700000001123,
			Sender:  &chatsapi.HistoryParticipant{ID: "amo-u-1", ClientID: "ext-u-1", Name: "Zoë"},
			Message: chatsapi.HistoryBody{ID: "amo-m-2", ClientID: "ext-43", Type: "text", Text: "second"},
		},
		{
			Timestamp: 1700000000, MsecTimestamp: 1700000000123,
			Sender:   &chatsapi.HistoryParticipant{ID: "amo-u-1", ClientID: "ext-u-1", Name: "Zoë"},
			Receiver: &chatsapi.HistoryParticipant{ID: "amo-u-2", Name: "Manager"},
			Message:  chatsapi.HistoryBody{ID: "amo-m-1", ClientID: "ext-42", Type: "location", Location: &wire.Location{Lon: 1.5, Lat: 2.5}},
		},
	}, msgs)

	reqs := f.requests()
	require.Len(t, reqs, 1)
	got := reqs[0]
	requireVectorRequest(t, v, got)
	require.Equal(t, "limit=50&offset=0", got.RawQuery)
	// The query string is not signed: a signature over path+query would not match.
	h := signer.SignWithDate("GET", got.Path+"?"+got.RawQuery, nil, signer.Secret(v.Secret), v.Date)
	require.NotEqual(t, h.Signature, got.Header.Get("X-Signature"))
}

func TestHistory(t *testing.T) {
	tests := []struct {
		name          string
		offset, limit int
		status        int
		wantQuery     string
		wantNil       bool
		wantErr       bool
	}{
		{name: "clamped to 50", offset: 100, limit: 500, status: 200, wantQuery: "limit=50&offset=100"},
		{name: "one", offset: 0, limit: 1, status: 200, wantQuery: "limit=1&offset=0"},
		{name: "204 is no messages", offset: 0, limit: 10, status: 204, wantQuery: "limit=10&offset=0", wantNil: true},
		{name: "zero limit", limit: 0, wantErr: true},
		{name: "negative offset", offset: -1, limit: 10, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.status == http.StatusNoContent {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				writeJSON(w, http.StatusOK, `{"messages":[]}`)
			})
			c := newClient(t, f.srv.URL, nil)
			msgs, err := c.History(context.Background(), "chat-1", tt.offset, tt.limit)
			if tt.wantErr {
				e, ok := chatsapi.AsError(err)
				require.True(t, ok, "%v", err)
				require.Equal(t, chatsapi.KindPermanent, e.Kind)
				require.Empty(t, f.requests())
				return
			}
			require.NoError(t, err)
			if tt.wantNil {
				require.Nil(t, msgs)
			} else {
				require.NotNil(t, msgs)
				require.Empty(t, msgs)
			}
			reqs := f.requests()
			require.Len(t, reqs, 1)
			require.Equal(t, "/v2/origin/custom/scope-1/chats/chat-1/history", reqs[0].Path)
			require.Equal(t, tt.wantQuery, reqs[0].RawQuery)
			require.Empty(t, reqs[0].Body)
			require.Equal(t, signer.BodyMD5(nil), reqs[0].Header.Get("Content-MD5"))
		})
	}
}

func TestCreateChat(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	chat, err := c.CreateChat(context.Background(), "conv-1", wire.Participant{
		ID: "u-1", RefID: "must-not-be-sent", Name: "Ann", Profile: &wire.Profile{Phone: "+10000000000"},
	})
	require.NoError(t, err)
	require.Equal(t, &chatsapi.Chat{ID: "6cbab3d5-c4c1-46ff-b710-ad59ad10805f", UserID: "amo-user-9"}, chat)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "POST", reqs[0].Method)
	require.Equal(t, "/v2/origin/custom/scope-1/chats", reqs[0].Path)
	require.Equal(t, `{"conversation_id":"conv-1","user":{"id":"u-1","name":"Ann","profile":{"phone":"+10000000000"}}}`, string(reqs[0].Body))
}

func TestSendMessageBodyIsWhatWasSigned(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	// Characters json.Marshal escapes, and a long text, still go out as signed.
	p := textPayload("m-1", "<b>&amp;</b> "+strings.Repeat("x", 100_000))
	res, err := c.SendMessage(context.Background(), p)
	require.NoError(t, err)
	require.Equal(t, "m-1", res.RefID)
	want, err := json.Marshal(wire.Event{EventType: wire.EventNewMessage, Payload: *p})
	require.NoError(t, err)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, want, reqs[0].Body)
	require.Equal(t, signer.BodyMD5(reqs[0].Body), reqs[0].Header.Get("Content-MD5"))
	require.Equal(t, "/v2/origin/custom/scope-1", reqs[0].Path)
}

func TestDatePerAttempt(t *testing.T) {
	clock := &stepClock{t: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), step: 7 * time.Second}
	var calls atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			writeJSON(w, http.StatusServiceUnavailable, `{"title":"Unavailable","detail":"try later"}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"new_message":{"msgid":"amo-1","ref_id":"m-1"}}`)
	})
	f.now = clock.Peek
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) { cfg.Now = clock.Now })

	// The caller retries; the client makes one attempt per call.
	_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	require.Error(t, err)
	_, err = c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	require.NoError(t, err)
	_, err = c.History(context.Background(), "chat-1", 0, 50)
	require.NoError(t, err)

	reqs := f.requests()
	require.Len(t, reqs, 3)
	dates := map[string]bool{}
	for _, r := range reqs {
		dates[r.Header.Get("Date")] = true
	}
	require.Len(t, dates, 3, "every attempt is signed with its own Date")
	require.Equal(t, reqs[0].Body, reqs[1].Body)
	require.NotEqual(t, reqs[0].Header.Get("X-Signature"), reqs[1].Header.Get("X-Signature"))
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     chatsapi.Config
		wantErr string
	}{
		{name: "default base URL", cfg: chatsapi.Config{Secret: testSecret}},
		{name: "https", cfg: chatsapi.Config{BaseURL: "https://amojo.amocrm.ru/", Secret: testSecret, ScopeID: "a_b"}},
		{name: "http loopback v4", cfg: chatsapi.Config{BaseURL: "http://127.0.0.1:8080", Secret: testSecret}},
		{name: "http loopback 127/8", cfg: chatsapi.Config{BaseURL: "http://127.1.2.3:8080", Secret: testSecret}},
		{name: "http loopback v6", cfg: chatsapi.Config{BaseURL: "http://[::1]:8080", Secret: testSecret}},
		{name: "http localhost", cfg: chatsapi.Config{BaseURL: "http://localhost:8080", Secret: testSecret}},
		{name: "http remote allowed", cfg: chatsapi.Config{BaseURL: "http://sim.internal:8080", Secret: testSecret, AllowInsecureHTTP: true}},
		{name: "http remote", cfg: chatsapi.Config{BaseURL: "http://amojo.kommo.com", Secret: testSecret}, wantErr: "plain http"},
		{name: "http private ip", cfg: chatsapi.Config{BaseURL: "http://10.0.0.1", Secret: testSecret}, wantErr: "plain http"},
		{name: "http localhost lookalike", cfg: chatsapi.Config{BaseURL: "http://localhost.evil.com", Secret: testSecret}, wantErr: "plain http"},
		{name: "other scheme", cfg: chatsapi.Config{BaseURL: "ftp://amojo.kommo.com", Secret: testSecret}, wantErr: "scheme"},
		{name: "no host", cfg: chatsapi.Config{BaseURL: "https://", Secret: testSecret}, wantErr: "no host"},
		{name: "relative", cfg: chatsapi.Config{BaseURL: "amojo.kommo.com", Secret: testSecret}, wantErr: "no host"},
		{name: "path", cfg: chatsapi.Config{BaseURL: "https://amojo.kommo.com/v2", Secret: testSecret}, wantErr: "scheme://host"},
		{name: "credentials", cfg: chatsapi.Config{BaseURL: "https://u:p@amojo.kommo.com", Secret: testSecret}, wantErr: "scheme://host"},
		{name: "no secret", cfg: chatsapi.Config{}, wantErr: "secret"},
		{name: "scope with slash", cfg: chatsapi.Config{Secret: testSecret, ScopeID: "a/b"}, wantErr: "scope id"},
		{name: "negative timeout", cfg: chatsapi.Config{Secret: testSecret, Timeout: -1}, wantErr: "timeout"},
		{name: "negative max bytes", cfg: chatsapi.Config{Secret: testSecret, MaxResponseBytes: -1}, wantErr: "MaxResponseBytes"},
		{name: "insecure TLS client", cfg: chatsapi.Config{Secret: testSecret, HTTPClient: &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the point of the test
		}}, wantErr: "verification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chatsapi.New(tt.cfg)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, c)
				require.NotContains(t, err.Error(), "p@")
				return
			}
			require.NoError(t, err)
			require.NotNil(t, c)
		})
	}
}

func TestScopedCallsNeedScope(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) { cfg.ScopeID = "" })
	ctx := context.Background()
	_, err1 := c.SendMessage(ctx, textPayload("m", "t"))
	_, err2 := c.CreateChat(ctx, "conv", wire.Participant{ID: "u", Name: "n"})
	_, err3 := c.History(ctx, "chat", 0, 10)
	for _, err := range []error{err1, err2, err3} {
		e, ok := chatsapi.AsError(err)
		require.True(t, ok)
		require.Equal(t, chatsapi.KindPermanent, e.Kind)
		require.ErrorContains(t, err, "scope id")
	}
	require.Empty(t, f.requests())
}

func TestInvalidArguments(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["nil payload"] = c.SendMessage(ctx, nil)
	_, errs["empty conversation"] = c.CreateChat(ctx, "", wire.Participant{ID: "u", Name: "n"})
	_, errs["user without name"] = c.CreateChat(ctx, "conv", wire.Participant{ID: "u"})
	_, errs["chat id with slash"] = c.History(ctx, "a/../b", 0, 10)
	_, errs["empty chat id"] = c.History(ctx, "", 0, 10)
	_, errs["channel id with query"] = c.Connect(ctx, "chan?x=1", "acc", "")
	_, errs["empty account"] = c.Connect(ctx, "chan", "", "")
	for name, err := range errs {
		e, ok := chatsapi.AsError(err)
		require.True(t, ok, name)
		require.Equal(t, chatsapi.KindPermanent, e.Kind, name)
		require.False(t, e.InDoubt, name)
	}
	require.Empty(t, f.requests())
}

func TestConnectWithoutTitle(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	_, err := c.Connect(context.Background(), "chan-1", "acc-1", "")
	require.NoError(t, err)
	reqs := f.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, `{"account_id":"acc-1","hook_api_version":"v2"}`, string(reqs[0].Body))
	require.Equal(t, "/v2/origin/custom/chan-1/connect", reqs[0].Path)
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"new_message":{"msgid":"amo-1","ref_id":"m-1"}}`)
	}))
	t.Cleanup(srv.Close)

	c := newClient(t, srv.URL, func(cfg *chatsapi.Config) { cfg.HTTPClient = srv.Client() })
	_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	require.NoError(t, err)

	// The default client verifies certificates: a self-signed one is refused
	// before anything was sent. It is retryable, not permanent: it says
	// nothing about this message, and the caller's attempt budget stops a run.
	c = newClient(t, srv.URL, nil)
	_, err = c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	e, ok := chatsapi.AsError(err)
	require.True(t, ok, "%v", err)
	var certErr *tls.CertificateVerificationError
	require.ErrorAs(t, err, &certErr)
	require.Equal(t, chatsapi.KindRetryable, e.Kind, "%v", err)
	require.False(t, e.InDoubt)
	require.Zero(t, e.Status)
}

func TestConcurrentSends(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			res, err := c.SendMessage(context.Background(), textPayload(fmt.Sprintf("m-%d", i), "hi"))
			if err == nil && res.RefID != fmt.Sprintf("m-%d", i) {
				err = fmt.Errorf("m-%d: answer for %s", i, res.RefID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, f.requests(), n)
}

func TestConfigDoesNotPrintSecret(t *testing.T) {
	cfg := chatsapi.Config{Secret: testSecret, ScopeID: "s"}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg)} {
		require.NotContains(t, s, testSecret.Reveal())
	}
}
