package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/signer"
)

func TestNewMessageAccepted(t *testing.T) {
	e := newEnv(t, Options{})
	body := msgBody("m-1", "conv-1", 1639604761694)
	resp, b := e.send(body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NotEmpty(t, resp.Header.Get("Date"))
	_, err := http.ParseTime(resp.Header.Get("Date"))
	require.NoError(t, err)

	// receiver_id is present and null for an incoming message.
	raw := decode[map[string]map[string]any](t, b)
	require.Contains(t, raw["new_message"], "receiver_id")
	require.Nil(t, raw["new_message"]["receiver_id"])

	res := decode[sendResult](t, b).NewMessage
	require.Equal(t, "m-1", res.RefID, "ref_id is our msgid")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, res.MsgID)
	require.NotEqual(t, "m-1", res.MsgID)
	require.NotEmpty(t, res.SenderID)

	// The chat was auto-created: create-chat returns the same id.
	resp, b = e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"conv-1","user":{"id":"client-conv-1","name":"Client conv-1"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	chat := decode[createChatResult](t, b)
	require.Equal(t, res.ConversationID, chat.ID)
	require.Equal(t, res.SenderID, chat.User.ID, "the same client id is the same Kommo user")

	led := e.sim.Ledger()
	require.Len(t, led, 1)
	require.Equal(t, int64(1), led[0].Seq)
	require.Equal(t, testScope, led[0].ScopeID)
	require.Equal(t, "conv-1", led[0].ConversationID)
	require.Equal(t, chat.ID, led[0].ChatID)
	require.Equal(t, "m-1", led[0].MsgID)
	require.Equal(t, res.MsgID, led[0].KommoMsgID)
	require.True(t, led[0].Silent)
	require.Equal(t, int64(1639604761694), led[0].MsecTimestamp)
	require.False(t, led[0].Duplicate)
	var sent map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &sent))
	require.JSONEq(t, string(sent["payload"]), string(led[0].Payload))

	st := e.sim.Stats()
	require.Equal(t, int64(1), st.Accepted)
	require.Equal(t, int64(2), st.Requests)
	require.Equal(t, int64(1), st.ByEndpoint[EndpointNewMessage])
	require.Equal(t, int64(1), st.ByEndpoint[EndpointCreateChat])
	require.Equal(t, int64(2), st.ByStatus["200"])
}

func TestOutgoingMessage(t *testing.T) {
	e := newEnv(t, Options{})
	p := payload("out-1", "conv-1", 1700000000123, false)
	p["sender"] = map[string]any{"id": "manager-7", "ref_id": "4b3e5c1a-0000-4000-8000-000000000007", "name": "Manager"}
	p["receiver"] = map[string]any{"id": "client-conv-1", "name": "Client"}
	resp, b := e.send(event(p))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	res := decode[sendResult](t, b).NewMessage
	require.Equal(t, "4b3e5c1a-0000-4000-8000-000000000007", res.SenderID, "a manager is known by its amojo id")
	require.NotNil(t, res.ReceiverID)
	require.NotEmpty(t, *res.ReceiverID)

	resp, b = e.do(http.MethodGet, historyPath(res.ConversationID, ""), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := decode[historyResp](t, b)
	require.Len(t, h.Messages, 1)
	require.Equal(t, "4b3e5c1a-0000-4000-8000-000000000007", h.Messages[0].Sender.ID)
	require.Empty(t, h.Messages[0].Sender.ClientID, "client_id only for external participants")
	require.NotNil(t, h.Messages[0].Receiver)
	require.Equal(t, "client-conv-1", h.Messages[0].Receiver.ClientID)
	require.Equal(t, *res.ReceiverID, h.Messages[0].Receiver.ID)
}

func TestCreateChatIdempotent(t *testing.T) {
	e := newEnv(t, Options{})
	body := []byte(`{"conversation_id":"conv-9","user":{"id":"u-9","name":"Vasya","avatar":"https://x/a.png","profile":{"phone":"+100","email":"v@x"}}}`)
	resp, b := e.do(http.MethodPost, chatPath, body, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	first := decode[createChatResult](t, b)
	require.NotEmpty(t, first.ID)
	require.Equal(t, chatUser{ID: first.User.ID, ClientID: "u-9", Name: "Vasya", Avatar: "https://x/a.png", Phone: "+100", Email: "v@x"}, first.User)

	// Same conversation, a renamed user: same chat, existing user data.
	resp, b = e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"conv-9","user":{"id":"u-9","name":"Other"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, first, decode[createChatResult](t, b))

	resp, b = e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"conv-10","user":{"id":"u-9","name":"Vasya"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	other := decode[createChatResult](t, b)
	require.NotEqual(t, first.ID, other.ID)
	require.Equal(t, first.User.ID, other.User.ID)
	require.Equal(t, int64(2), e.sim.Stats().ChatsCreated)

	for _, tc := range []struct{ body, want string }{
		{`{"user":{"id":"u","name":"n"}}`, "conversation_id: required"},
		{`{"conversation_id":"c"}`, "user: required"},
		{`{"conversation_id":"c","user":{"name":"n"}}`, "user.id: required"},
		{`{"conversation_id":"c","user":{"id":"u"}}`, "user.name: required"},
		{`{"conversation_id":"c","user":{"id":"u","name":"n"},"source":{"external_id":"` + strings.Repeat("x", 41) + `"}}`, "source.external_id: must be at most 40"},
		{`[1]`, "body: must be a JSON object"},
	} {
		resp, b := e.do(http.MethodPost, chatPath, []byte(tc.body), nil)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, tc.body)
		got := decode[apiError](t, b)
		require.Equal(t, "INVALID_DATA", got.ErrorType)
		require.Equal(t, 400, got.ErrorCode)
		require.True(t, strings.HasPrefix(got.ErrorDescription, tc.want), "%s: got %q", tc.body, got.ErrorDescription)
	}
}

func TestConnect(t *testing.T) {
	e := newEnv(t, Options{})
	b1 := []byte(`{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2"}`)
	resp, b := e.do(http.MethodPost, "/v2/origin/custom/"+testChannel+"/connect", b1, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	require.JSONEq(t, `{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2","scope_id":"`+testScope+`"}`, string(b))

	resp, b = e.do(http.MethodPost, "/v2/origin/custom/other-channel/connect", b1, nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Equal(t, scopeRefusal, string(b))

	resp, b = e.do(http.MethodPost, "/v2/origin/custom/"+testChannel+"/connect", []byte(`{"title":"x"}`), nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(b), `"account_id: required"`)
}

// TestConnectVector replays the official connect example (vector V1) with
// the simulator's clock set to its Date.
func TestConnectVector(t *testing.T) {
	date := "Mon, 03 Oct 2020 15:11:21 +0000"
	at, err := signer.ParseDate(date)
	require.NoError(t, err)
	e := newEnv(t, Options{Now: func() time.Time { return at }})
	body := []byte(`{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle","hook_api_version":"v2"}`)
	req := e.request(http.MethodPost, "/v2/origin/custom/"+testChannel+"/connect", body, func(r *http.Request) {
		r.Header.Set("Date", date)
		r.Header.Set("Content-MD5", "a5e8ae04332a6d0aac15f01ad05d40e3")
		r.Header.Set("X-Signature", "9d7bcd1bac8a4bd3e1d96d6a4ac69a9635b913f2")
	})
	resp, err := e.ts.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestSignatureRefusals(t *testing.T) {
	body := msgBody("m-1", "conv-1", 1639604761694)
	tests := []struct {
		name   string
		body   []byte // sent instead of the signed body, if set
		mutate func(*http.Request)
		method string
		path   string
		status int
		want   string
	}{
		{name: "tampered body byte", body: bytes.Replace(body, []byte("hello"), []byte("hellp"), 1), status: 403, want: sigRefusal},
		{name: "trailing newline", body: append(append([]byte{}, body...), '\n'), status: 403, want: sigRefusal},
		{name: "wrong secret", mutate: func(r *http.Request) {
			signer.Sign(r.Method, r.URL.Path, body, "wrong-secret", time.Now()).Apply(r.Header)
		}, status: 403, want: sigRefusal},
		{name: "Date 16 min old", mutate: func(r *http.Request) {
			signer.Sign(r.Method, r.URL.Path, body, testSecret, time.Now().Add(-16*time.Minute)).Apply(r.Header)
		}, status: 403, want: sigRefusal},
		{name: "Date 16 min ahead", mutate: func(r *http.Request) {
			signer.Sign(r.Method, r.URL.Path, body, testSecret, time.Now().Add(16*time.Minute)).Apply(r.Header)
		}, status: 403, want: sigRefusal},
		{name: "Date 14 min old is fine", mutate: func(r *http.Request) {
			signer.Sign(r.Method, r.URL.Path, body, testSecret, time.Now().Add(-14*time.Minute)).Apply(r.Header)
		}, status: 200},
		{name: "GMT date form is accepted", mutate: func(r *http.Request) {
			signer.SignWithDate(r.Method, r.URL.Path, body, testSecret, time.Now().UTC().Format(http.TimeFormat)).Apply(r.Header)
		}, status: 200},
		{name: "missing Date", mutate: func(r *http.Request) { r.Header.Del("Date") }, status: 403, want: sigRefusal},
		{name: "missing Content-MD5", mutate: func(r *http.Request) { r.Header.Del("Content-MD5") }, status: 403, want: sigRefusal},
		{name: "missing X-Signature", mutate: func(r *http.Request) { r.Header.Del("X-Signature") }, status: 403, want: sigRefusal},
		{name: "missing Content-Type", mutate: func(r *http.Request) { r.Header.Del("Content-Type") }, status: 403, want: sigRefusal},
		{name: "wrong content type", mutate: func(r *http.Request) {
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
		}, status: 403, want: sigRefusal},
		{name: "signed over another path", mutate: func(r *http.Request) {
			signer.Sign(r.Method, chatPath, body, testSecret, time.Now()).Apply(r.Header)
		}, status: 403, want: sigRefusal},
		{name: "uppercase hex signature", mutate: func(r *http.Request) {
			r.Header.Set("X-Signature", strings.ToUpper(r.Header.Get("X-Signature")))
		}, status: 403, want: sigRefusal},
		{name: "unknown scope", path: "/v2/origin/custom/some-other-scope", status: 404, want: scopeRefusal},
		{name: "unknown scope on create chat", path: "/v2/origin/custom/some-other-scope/chats", status: 404, want: scopeRefusal},
		{name: "unknown scope on history", method: http.MethodGet, path: "/v2/origin/custom/some-other-scope/chats/x/history", status: 404, want: scopeRefusal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			method, path := http.MethodPost, sendPath
			if tc.method != "" {
				method = tc.method
			}
			if tc.path != "" {
				path = tc.path
			}
			signed := body
			if method == http.MethodGet {
				signed = nil
			}
			req := e.request(method, path, signed, tc.mutate)
			if tc.body != nil {
				req = e.request(method, path, body, func(r *http.Request) {
					r.Body = http.NoBody
				})
				// Keep the signature of body, send other bytes.
				hdr := req.Header.Clone()
				req2, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(tc.body))
				require.NoError(t, err)
				req2.Header = hdr
				req = req2
			}
			resp, err := e.ts.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var got bytes.Buffer
			_, err = got.ReadFrom(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, resp.StatusCode, "body: %s", got.String())
			require.NotEmpty(t, resp.Header.Get("Date"))
			if tc.want != "" {
				require.Equal(t, tc.want, got.String())
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				require.Empty(t, e.sim.Ledger())
			}
			st := e.sim.Stats()
			switch tc.status {
			case 403:
				require.Equal(t, int64(1), st.RejectedSignature)
			case 404:
				require.Equal(t, int64(1), st.RejectedScope)
			}
		})
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	e := newEnv(t, Options{})
	resp, _ := e.do(http.MethodPost, "/v2/origin/custom/"+testScope+"/typing/extra", []byte(`{}`), nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, _ = e.do(http.MethodGet, sendPath, nil, nil)
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, int64(2), e.sim.Stats().ByEndpoint[EndpointUnknown]+e.sim.Stats().ByEndpoint[EndpointNewMessage])
}

func TestPayloadValidation(t *testing.T) {
	type P = map[string]any
	base := func() P { return payload("m-1", "conv-1", 1639604761694, true) }
	with := func(f func(P)) []byte { p := base(); f(p); return event(p) }
	msg := func(m P) []byte { return with(func(p P) { p["message"] = m }) }
	tests := []struct {
		name string
		body []byte
		want string // error_description prefix
	}{
		{"not JSON", []byte(`{"event_type":`), "body: invalid JSON"},
		{"trailing data", []byte(`{"event_type":"new_message"} {}`), "body: invalid JSON"},
		{"array", []byte(`[]`), "body: must be a JSON object"},
		{"no event_type", []byte(`{"payload":{}}`), "event_type: required"},
		{"edit_message", []byte(`{"event_type":"edit_message","payload":{}}`), "event_type: unsupported"},
		{"no payload", []byte(`{"event_type":"new_message"}`), "payload: required"},
		{"payload not object", []byte(`{"event_type":"new_message","payload":"x"}`), "payload: must be an object"},
		{"no msgid", with(func(p P) { delete(p, "msgid") }), "payload.msgid: required"},
		{"empty msgid", with(func(p P) { p["msgid"] = "" }), "payload.msgid: must not be empty"},
		{"numeric msgid", with(func(p P) { p["msgid"] = 12 }), "payload.msgid: must be a string"},
		{"no conversation_id", with(func(p P) { delete(p, "conversation_id") }), "payload.conversation_id: required"},
		{"no timestamp", with(func(p P) { delete(p, "timestamp") }), "payload.timestamp: required"},
		{"string timestamp", with(func(p P) { p["timestamp"] = "1639604761" }), "payload.timestamp: must be an integer"},
		{"float timestamp", with(func(p P) { p["timestamp"] = 1639604761.5 }), "payload.timestamp: must be an integer"},
		{"no msec_timestamp", with(func(p P) { delete(p, "msec_timestamp") }), "payload.msec_timestamp: required"},
		{"float msec_timestamp", with(func(p P) { p["msec_timestamp"] = 1639604761694.5 }), "payload.msec_timestamp: must be an integer"},
		{"negative timestamp", with(func(p P) { p["timestamp"] = -1; p["msec_timestamp"] = -1000 }), "payload.timestamp: must not be negative"},
		{"timestamps disagree", with(func(p P) { p["timestamp"] = 1639604762 }), "payload.msec_timestamp: is 1639604761694, not the same time"},
		{"no silent", with(func(p P) { delete(p, "silent") }), "payload.silent: required"},
		{"null silent", with(func(p P) { p["silent"] = nil }), "payload.silent: required"},
		{"string silent", with(func(p P) { p["silent"] = "true" }), "payload.silent: must be a boolean"},
		{"no sender", with(func(p P) { delete(p, "sender") }), "payload.sender: required"},
		{"sender not object", with(func(p P) { p["sender"] = "x" }), "payload.sender: must be an object"},
		{"no sender.id", with(func(p P) { p["sender"] = P{"name": "n"} }), "payload.sender.id: required"},
		{"no sender.name", with(func(p P) { p["sender"] = P{"id": "i"} }), "payload.sender.name: required"},
		{"blank sender.name", with(func(p P) { p["sender"] = P{"id": "i", "name": "  "} }), "payload.sender.name: must not be empty"},
		{"numeric profile phone", with(func(p P) { p["sender"] = P{"id": "i", "name": "n", "profile": P{"phone": 79990001122}} }), "payload.sender.profile.phone: must be a string"},
		{"receiver without sender.ref_id", with(func(p P) { p["receiver"] = P{"id": "c", "name": "Client"} }), "payload.sender.ref_id: required when receiver is set"},
		{"receiver without id", with(func(p P) {
			p["sender"] = P{"id": "m", "name": "M", "ref_id": "r"}
			p["receiver"] = P{"name": "Client"}
		}), "payload.receiver.id: required"},
		{"source too long", with(func(p P) { p["source"] = P{"external_id": strings.Repeat("s", 41)} }), "payload.source.external_id: must be at most 40"},
		{"source not printable", with(func(p P) { p["source"] = P{"external_id": "a\tb"} }), "payload.source.external_id: must be at most 40"},
		{"no message", with(func(p P) { delete(p, "message") }), "payload.message: required"},
		{"no message.type", msg(P{"text": "x"}), "payload.message.type: required"},
		{"unknown type", msg(P{"type": "gif"}), "payload.message.type: unknown type \"gif\""},
		{"text without text", msg(P{"type": "text"}), "payload.message.text: required for type text"},
		{"text empty", msg(P{"type": "text", "text": ""}), "payload.message.text: required for type text"},
		{"text not string", msg(P{"type": "text", "text": 5}), "payload.message.text: must be a string"},
		{"file without file_name", msg(P{"type": "file", "media": "https://x/f", "file_size": 10}), "payload.message.file_name: required for type file"},
		{"video without file_size", msg(P{"type": "video", "media": "https://x/f", "file_name": "v.mp4"}), "payload.message.file_size: required for type video"},
		{"picture without file_name", msg(P{"type": "picture", "file_size": 1}), "payload.message.file_name: required for type picture"},
		{"file_size string", msg(P{"type": "file", "file_name": "a", "file_size": "10"}), "payload.message.file_size: must be an integer"},
		{"file_size negative", msg(P{"type": "file", "file_name": "a", "file_size": -1}), "payload.message.file_size: must not be negative"},
		{"media_duration float", msg(P{"type": "voice", "media": "https://x/v", "media_duration": 1.5}), "payload.message.media_duration: must be an integer"},
		{"location missing", msg(P{"type": "location"}), "payload.message.location: required"},
		{"location no lat", msg(P{"type": "location", "location": P{"lon": 1}}), "payload.message.location.lat: required"},
		{"location lat out of range", msg(P{"type": "location", "location": P{"lat": 90.5, "lon": 1}}), "payload.message.location.lat: must be in [-90, 90]"},
		{"location lon out of range", msg(P{"type": "location", "location": P{"lat": 1, "lon": -180.1}}), "payload.message.location.lon: must be in [-180, 180]"},
		{"location lat string", msg(P{"type": "location", "location": P{"lat": "1", "lon": 1}}), "payload.message.location.lat: must be a number"},
		{"contact missing", msg(P{"type": "contact"}), "payload.message.contact: required"},
		{"contact no phone", msg(P{"type": "contact", "contact": P{"name": "A"}}), "payload.message.contact.phone: required"},
		{"contact numeric phone", msg(P{"type": "contact", "contact": P{"name": "A", "phone": 7999}}), "payload.message.contact.phone: must be a string"},
		{"reply_to not object", with(func(p P) { p["reply_to"] = "m-0" }), "payload.reply_to: must be an object"},
		{"reply_to without message", with(func(p P) { p["reply_to"] = P{} }), "payload.reply_to.message: required"},
		{"reply_to without id or msgid", with(func(p P) { p["reply_to"] = P{"message": P{"text": "x"}} }), "payload.reply_to.message.id: required (id or msgid)"},
		{"reply_to numeric id", with(func(p P) { p["reply_to"] = P{"message": P{"id": 5}} }), "payload.reply_to.message.id: must be a string"},
		{"reply_to by msgid alone", with(func(p P) { p["reply_to"] = P{"message": P{"msgid": "m-0"}} }), "payload.reply_to.message.type: required without id"},
		{"reply_to by msgid without timestamps", with(func(p P) { p["reply_to"] = P{"message": P{"msgid": "m-0", "type": "text", "text": "x"}} }),
			"payload.reply_to.message.timestamp: required without id"},
		{"reply_to by msgid without sender", with(func(p P) { p["reply_to"] = P{"message": embeddedByMsgID(func(m P) { delete(m, "sender") })} }),
			"payload.reply_to.message.sender: required without id"},
		{"reply_to by msgid, text without text", with(func(p P) { p["reply_to"] = P{"message": embeddedByMsgID(func(m P) { delete(m, "text") })} }),
			"payload.reply_to.message.text: required for type text"},
		{"reply_to unknown type", with(func(p P) { p["reply_to"] = P{"message": P{"id": "k-1", "type": "gif"}} }), "payload.reply_to.message.type: unknown type"},
		{"reply_to negative file_size", with(func(p P) { p["reply_to"] = P{"message": P{"id": "k-1", "file_size": -1}} }), "payload.reply_to.message.file_size: must not be negative"},
		{"forwards not object", with(func(p P) { p["forwards"] = []any{} }), "payload.forwards: must be an object"},
		{"forwards without messages", with(func(p P) { p["forwards"] = P{"conversation_id": "c"} }), "payload.forwards.messages: required"},
		{"forwards messages not array", with(func(p P) { p["forwards"] = P{"messages": P{"id": "k"}} }), "payload.forwards.messages: must be an array"},
		{"forwards of two", with(func(p P) { p["forwards"] = P{"messages": []any{P{"id": "k-1"}, P{"id": "k-2"}}} }), "payload.forwards.messages: at most 1 message"},
		{"forwards of none", with(func(p P) { p["forwards"] = P{"messages": []any{}} }), "payload.forwards.messages: must hold 1 message"},
		{"forwarded message without id", with(func(p P) { p["forwards"] = P{"messages": []any{P{"text": "x"}}} }), "payload.forwards.messages[0].id: required (id or msgid)"},
		{"forwards numeric conversation_id", with(func(p P) { p["forwards"] = P{"messages": []any{P{"id": "k"}}, "conversation_id": 1} }),
			"payload.forwards.conversation_id: must be a string"},
		{"shared_post not object", msg(P{"type": "text", "text": "x", "shared_post": "u"}), "payload.message.shared_post: must be an object"},
		{"shared_post without url", msg(P{"type": "text", "text": "x", "shared_post": P{"type": "post"}}), "payload.message.shared_post.url: required"},
		{"shared_post without type", msg(P{"type": "text", "text": "x", "shared_post": P{"url": "https://s/1"}}), "payload.message.shared_post.type: required"},
		{"shared_post other type", msg(P{"type": "text", "text": "x", "shared_post": P{"url": "https://s/1", "type": "video"}}), "payload.message.shared_post.type: must be \"post\""},
		{"delivery_status not object", msg(P{"type": "text", "text": "x", "delivery_status": 1}), "payload.message.delivery_status: must be an object"},
		{"delivery_status without code", msg(P{"type": "text", "text": "x", "delivery_status": P{}}), "payload.message.delivery_status.status_code: required"},
		{"delivery_status bad code", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": 3}}), "payload.message.delivery_status.status_code: must be 1, 2 or -1"},
		{"delivery_status error without code", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": -1}}), "payload.message.delivery_status.error_code: required"},
		{"delivery_status error code out of range", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": -1, "error_code": 900}}),
			"payload.message.delivery_status.error_code: must be 901 to 905"},
		{"delivery_status 905 without text", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": -1, "error_code": 905}}),
			"payload.message.delivery_status.error: required"},
	}
	e := newEnv(t, Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.send(tc.body)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "body: %s", b)
			got := decode[apiError](t, b)
			require.Equal(t, apiError{Status: 0, ErrorCode: 400, ErrorType: "INVALID_DATA", ErrorDescription: got.ErrorDescription}, got)
			require.True(t, strings.HasPrefix(got.ErrorDescription, tc.want), "got %q, want prefix %q", got.ErrorDescription, tc.want)
		})
	}
	require.Empty(t, e.sim.Ledger())
	require.Equal(t, int64(len(tests)), e.sim.Stats().RejectedInvalid)

	valid := []struct {
		name string
		body []byte
	}{
		{"every type", nil},
		{"contact", msg(P{"type": "contact", "contact": P{"name": "A", "phone": "+7999"}})},
		{"file", msg(P{"type": "file", "media": "https://x/f", "file_name": "f.pdf", "file_size": 0})},
		{"video", msg(P{"type": "video", "media": "https://x/v", "file_name": "v.mp4", "file_size": 10, "media_duration": 3})},
		{"picture with caption", msg(P{"type": "picture", "media": "https://x/p", "file_name": "p.jpg", "file_size": 10, "text": "look"})},
		{"voice", msg(P{"type": "voice", "media": "https://x/v"})},
		{"audio", msg(P{"type": "audio", "media": "https://x/a"})},
		{"sticker", msg(P{"type": "sticker", "media": "https://x/s", "sticker_id": "s1"})},
		{"location edge", msg(P{"type": "location", "location": P{"lat": -90, "lon": 180}})},
		{"unknown extra fields ignored", with(func(p P) { p["account_id"] = "x" })},
		{"source", with(func(p P) { p["source"] = P{"external_id": "pipeline 1"} })},
		{"reply by id", with(func(p P) { p["reply_to"] = P{"message": P{"id": "6cbab3d5-c4c1-46ff-b710-ad59ad10805f"}} })},
		{"reply by msgid with the message", with(func(p P) { p["reply_to"] = P{"message": embeddedByMsgID(nil)} })},
		{"forward", with(func(p P) {
			p["forwards"] = P{"messages": []any{P{"id": "k-1", "file_name": "a.pdf", "file_size": 3, "location": P{"lat": 1, "lon": 2}}}, "conversation_id": "c0", "conversation_ref_id": "r0"}
		})},
		{"shared post", msg(P{"type": "text", "text": "x", "shared_post": P{"url": "https://s/1", "type": "post", "preview_link": "https://s/1.jpg", "site_name": "S"}})},
		{"delivered", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": 1}})},
		{"error 905", msg(P{"type": "text", "text": "x", "delivery_status": P{"status_code": -1, "error_code": 905, "error": "blocked"}})},
	}
	for i, tc := range valid[1:] {
		body := bytes.Replace(tc.body, []byte(`"m-1"`), []byte(`"ok-`+string(rune('a'+i))+`"`), 1)
		resp, b := e.send(body)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", tc.name, b)
	}
}

// embeddedByMsgID is a quoted message named by our msgid, with what the
// API needs to show it without a Kommo id.
func embeddedByMsgID(edit func(map[string]any)) map[string]any {
	m := map[string]any{"msgid": "m-0", "type": "text", "text": "earlier", "timestamp": 1639604700, "msec_timestamp": 1639604700000,
		"sender": map[string]any{"id": "client-conv-1", "name": "Client"}}
	if edit != nil {
		edit(m)
	}
	return m
}

func TestDuplicateMsgID(t *testing.T) {
	t.Run("default records a duplicate", func(t *testing.T) {
		e := newEnv(t, Options{})
		_, b1 := e.send(msgBody("m-1", "conv-1", 1700000000000))
		resp, b2 := e.send(msgBody("m-1", "conv-1", 1700000000000))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		r1, r2 := decode[sendResult](t, b1).NewMessage, decode[sendResult](t, b2).NewMessage
		require.NotEqual(t, r1.MsgID, r2.MsgID, "a new Kommo message")
		require.Equal(t, r1.ConversationID, r2.ConversationID)
		led := e.sim.Ledger()
		require.Len(t, led, 2)
		require.False(t, led[0].Duplicate)
		require.True(t, led[1].Duplicate)
		st := e.sim.Stats()
		require.Equal(t, int64(2), st.Accepted)
		require.Equal(t, int64(1), st.Duplicates)
		_, b := e.do(http.MethodGet, historyPath(r1.ConversationID, ""), nil, nil)
		require.Equal(t, []string{"m-1", "m-1"}, clientIDs(decode[historyResp](t, b)))
	})
	t.Run("idempotent returns the first answer", func(t *testing.T) {
		e := newEnv(t, Options{IdempotentMsgID: true})
		_, b1 := e.send(msgBody("m-1", "conv-1", 1700000000000))
		resp, b2 := e.send(msgBody("m-1", "conv-1", 1700000000000))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.JSONEq(t, string(b1), string(b2))
		require.Len(t, e.sim.Ledger(), 1)
		st := e.sim.Stats()
		require.Equal(t, int64(1), st.Accepted)
		require.Equal(t, int64(0), st.Duplicates)
		require.Equal(t, int64(1), st.IdempotentRepeats)
	})
}

func TestHistory(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Now: clock.Now})
	resp, b := e.do(http.MethodGet, historyPath("no-such-chat", ""), nil, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Empty(t, b)

	// An empty chat (created, no messages) is 204 too.
	resp, b = e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"conv-1","user":{"id":"client-conv-1","name":"C"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	chatID := decode[createChatResult](t, b).ID
	resp, _ = e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	// Sent out of order, with a tie on msec_timestamp (m-b before m-c).
	for _, m := range []struct {
		id   string
		msec int64
	}{{"m-a", 1000_000}, {"m-d", 4000_000}, {"m-b", 2000_000}, {"m-c", 2000_000}, {"m-e", 5000_000}} {
		resp, b := e.send(msgBody(m.id, "conv-1", m.msec))
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	}
	e.send(msgBody("other", "conv-2", 9000_000))

	resp, b = e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	h := decode[historyResp](t, b)
	require.Equal(t, []string{"m-e", "m-d", "m-c", "m-b", "m-a"}, clientIDs(h), "newest first, later arrival first on a tie")
	first := h.Messages[0]
	require.Equal(t, int64(5000), first.Timestamp)
	require.Equal(t, int64(5000_000), first.MsecTimestamp)
	require.Equal(t, "text", first.Message.Type)
	require.Equal(t, "hello m-e", first.Message.Text)
	require.NotEmpty(t, first.Message.ID)
	require.Equal(t, "client-conv-1", first.Sender.ClientID)
	require.Equal(t, decode[createChatResult](t, mustChat(t, e)).User.ID, first.Sender.ID)

	resp, b = e.do(http.MethodGet, historyPath(chatID, "offset=1&limit=2"), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"m-d", "m-c"}, clientIDs(decode[historyResp](t, b)))

	resp, b = e.do(http.MethodGet, historyPath(chatID, "offset=5"), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"messages":[]}`, string(b))

	resp, _ = e.do(http.MethodGet, historyPath(chatID, "limit=50"), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, b = e.do(http.MethodGet, historyPath(chatID, "limit=51"), nil, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, decode[apiError](t, b).ErrorDescription, "limit: must be an integer from 1 to 50")
	resp, b = e.do(http.MethodGet, historyPath(chatID, "offset=-1"), nil, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, decode[apiError](t, b).ErrorDescription, "offset:")

	// Signing over the path with the query is refused: the query is not signed.
	resp, b = e.do(http.MethodGet, historyPath(chatID, "limit=5"), nil, func(r *http.Request) {
		signer.Sign(http.MethodGet, r.URL.RequestURI(), nil, testSecret, clock.Now()).Apply(r.Header)
	})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, sigRefusal, string(b))
}

func mustChat(t *testing.T, e *env) []byte {
	t.Helper()
	resp, b := e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"conv-1","user":{"id":"client-conv-1","name":"C"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return b
}

func TestHistoryDelay(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Now: clock.Now, HistoryDelay: 2 * time.Second})
	_, b := e.send(msgBody("m-1", "conv-1", 1000_000))
	chatID := decode[sendResult](t, b).NewMessage.ConversationID
	resp, _ := e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "accepted but not processed yet")

	clock.Advance(time.Second)
	e.send(msgBody("m-2", "conv-1", 2000_000))
	clock.Advance(time.Second)
	resp, b = e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, []string{"m-1"}, clientIDs(decode[historyResp](t, b)))

	clock.Advance(time.Second)
	_, b = e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, []string{"m-2", "m-1"}, clientIDs(decode[historyResp](t, b)))
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no scope", Options{Secret: "s"}, "ScopeID is required"},
		{"no secret", Options{ScopeID: "s"}, "Secret is required"},
		{"bad faults", Options{ScopeID: "s", Secret: "s", Faults: Faults{"500": 0.7, "503": 0.7}}, "sum to"},
		{"negative burst", Options{ScopeID: "s", Secret: "s", Burst: -1}, "negative Burst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestLedgerRecordsReplyAndForward: the ledger tells which message a reply
// quotes and which one a forward carries, so importer tests can check them.
func TestLedgerRecordsReplyAndForward(t *testing.T) {
	e := newEnv(t, Options{})
	resp, b := e.send(msgBody("m-1", "conv-1", 1700000000000))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	first := decode[sendResult](t, b).NewMessage.MsgID

	p := payload("m-2", "conv-1", 1700000001000, true)
	p["reply_to"] = map[string]any{"message": map[string]any{"id": first}}
	resp, b = e.send(event(p))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)

	p = payload("m-3", "conv-2", 1700000002000, true)
	p["forwards"] = map[string]any{"messages": []any{map[string]any{"id": first}}, "conversation_id": "conv-1"}
	resp, b = e.send(event(p))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)

	p = payload("m-4", "conv-1", 1700000003000, true)
	p["reply_to"] = map[string]any{"message": embeddedByMsgID(func(m map[string]any) { m["msgid"] = "m-1" })}
	resp, b = e.send(event(p))
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)

	led := e.sim.Ledger()
	require.Len(t, led, 4)
	type refs struct{ ReplyTo, Forward string }
	var got []refs
	for _, l := range led {
		got = append(got, refs{l.ReplyTo(), l.Forward()})
	}
	require.Equal(t, []refs{{}, {ReplyTo: first}, {Forward: first}, {ReplyTo: "m-1"}}, got)

	// The same from a ledger file's line.
	line, err := json.Marshal(led[1])
	require.NoError(t, err)
	var fromFile LedgerEntry
	require.NoError(t, json.Unmarshal(line, &fromFile))
	require.Equal(t, first, fromFile.ReplyTo())
}
