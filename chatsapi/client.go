package chatsapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kommo-import/kommo-import/internal/baseurl"
	"github.com/kommo-import/kommo-import/internal/tcpopt"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/wire"
)

// Defaults for Config fields left zero.
const (
	DefaultBaseURL          = "https://amojo.kommo.com"
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// MaxHistoryLimit is the largest page History asks for (the API's maximum).
const MaxHistoryLimit = 50

// Config configures a Client. Only Secret is required; ScopeID is required by
// the scoped calls (everything except Connect).
type Config struct {
	BaseURL string // default DefaultBaseURL; https, or http only for loopback hosts or with AllowInsecureHTTP
	ScopeID string
	Secret  signer.Secret
	// HTTPClient is used as a template: the Client copies it and turns off
	// redirect following. Nil, or a nil Transport, gives a transport with
	// dial and TLS handshake timeouts of min(10s, Timeout), 64 KiB of
	// response headers at most and certificate checks on. Certificate checks
	// cannot be turned off: New refuses a transport it can see skips them,
	// and an https response whose chain was not verified fails the call.
	HTTPClient *http.Client
	// Timeout bounds one whole attempt: connecting, TLS, writing the
	// request, and reading the headers and the body. Default 30s.
	Timeout time.Duration
	// Now gives the Date header's time; default time.Now.
	Now func() time.Time
	// AllowInsecureHTTP permits plain http to a non-loopback host.
	AllowInsecureHTTP bool
	// MaxResponseBytes caps how much of a response body is read; a longer
	// body is not read further and fails the call. Default 1 MiB.
	MaxResponseBytes int64
	// WrapTransport, when set, is called once by New with the transport the
	// Client would use (the default above, or HTTPClient's) after New has
	// inspected it, and the Client sends through what it returns. It is the
	// place for metrics or tracing: the wrapper keeps every limit of the
	// transport it wraps, where a copied transport drifts. Endpoint names a
	// request for a label. CloseIdleConnections reaches the wrapped transport
	// whether or not the wrapper forwards it.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Client calls the Kommo Chats API. It is safe for concurrent use. Each call
// makes exactly one HTTP attempt; retrying is the caller's decision.
type Client struct {
	base     *url.URL
	scopeID  string
	secret   signer.Secret
	hc       *http.Client
	timeout  time.Duration
	now      func() time.Time
	maxBytes int64
	// wrapped is the transport under WrapTransport's wrapper, nil when
	// there is none: http.Client only closes the outermost one's connections.
	wrapped interface{ CloseIdleConnections() }
}

// New validates cfg and returns a Client. It refuses a BaseURL that is not
// https (plain http only to a loopback host or with AllowInsecureHTTP), that
// has a path, query or credentials, an empty Secret, negative durations or
// sizes, an HTTPClient whose transport skips certificate verification, and a
// WrapTransport that returns nil.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := baseurl.Parse(cfg.BaseURL, cfg.AllowInsecureHTTP, "the channel secret signs every request")
	if err != nil {
		return nil, fmt.Errorf("chats api: %w", err)
	}
	if cfg.Secret == "" {
		return nil, errors.New("chats api: empty channel secret")
	}
	if cfg.ScopeID != "" {
		if err := checkSegment("scope id", cfg.ScopeID); err != nil {
			return nil, fmt.Errorf("chats api: %w", err)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("chats api: negative timeout %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("chats api: negative MaxResponseBytes %d", cfg.MaxResponseBytes)
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	if hc.Transport == nil {
		// Not http.DefaultTransport: that is a global anyone can loosen.
		hc.Transport = newTransport(cfg.Timeout)
	}
	if err := checkTransport(hc.Transport); err != nil {
		return nil, fmt.Errorf("chats api: %w", err)
	}
	var wrapped interface{ CloseIdleConnections() }
	if cfg.WrapTransport != nil {
		inner := hc.Transport
		if hc.Transport = cfg.WrapTransport(inner); hc.Transport == nil {
			return nil, errors.New("chats api: WrapTransport returned nil")
		}
		wrapped, _ = inner.(interface{ CloseIdleConnections() })
	}
	// The signature covers the path, and a redirected POST could be
	// processed twice: a 3xx is returned to the caller as a permanent error.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		base:     base,
		scopeID:  cfg.ScopeID,
		secret:   cfg.Secret,
		hc:       &hc,
		timeout:  cfg.Timeout,
		now:      cfg.Now,
		maxBytes: cfg.MaxResponseBytes,
		wrapped:  wrapped,
	}, nil
}

// maxResponseHeaderBytes caps a response's headers; amojo sends well under 2 KiB.
const maxResponseHeaderBytes = 64 << 10

// newTransport is the default transport. The attempt's context bounds every
// request; the dial and handshake timeouts are capped by it too because
// net/http keeps dialling after the request that started the dial gave up
// (to pool the connection), and a server that accepts TCP but never speaks
// TLS would otherwise hold that goroutine for the full 10s.
//
// A request the client gives up on must not reach the API later, after the
// message was looked up and sent again: each connection carries one request
// at a time (HTTP/1.1; HTTP/2 would keep a cancelled stream's bytes queued
// on a connection that stays open), net/http closes a connection whose
// request was cancelled, and the close resets it (SO_LINGER 0), discarding
// what the kernel had not sent yet. TCP_USER_TIMEOUT of the attempt's length
// has the kernel drop a connection whose data goes unacknowledged (a
// black-holed network), even while this process is frozen. And a request
// is not written at all once its attempt's time is over, or when the
// caller's WithWriteCheck says no, checked by the connection right before
// the first byte (a process frozen between the caller's checks and the
// write would otherwise send it whenever it runs again).
func newTransport(attemptTimeout time.Duration) *http.Transport {
	connect := min(10*time.Second, attemptTimeout)
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: checkedDial(tcpopt.Dialer(connect, tcpopt.Options{UserTimeout: attemptTimeout, ResetOnClose: true,
			KeepAlive: net.KeepAliveConfig{Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}}).DialContext),
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    connect,
		ResponseHeaderTimeout:  30 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		ForceAttemptHTTP2:      false,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    64, // every worker talks to the one amojo host
		IdleConnTimeout:        90 * time.Second,
	}
}

// checkTransport refuses what New can see would skip certificate checks: an
// InsecureSkipVerify config, or TLS dialling the transport does not do itself.
// A transport wrapped in another RoundTripper is opaque here; attempt checks
// every https response for verified chains, so that cannot skip them either.
func checkTransport(rt http.RoundTripper) error {
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil
	}
	if t.TLSClientConfig != nil && t.TLSClientConfig.InsecureSkipVerify {
		return errors.New("HTTP client skips TLS certificate verification")
	}
	//lint:ignore SA1019 a deprecated DialTLS still dials TLS past the checks, so it is refused too
	if t.DialTLSContext != nil || t.DialTLS != nil {
		return errors.New("HTTP client dials TLS itself: certificate verification cannot be checked")
	}
	return nil
}

// checkSegment refuses ids that would change the URL's shape or need
// escaping: the server verifies the signature over the path it sees, and
// escaping rules differ between implementations.
func checkSegment(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if s == "." || s == ".." || url.PathEscape(s) != s {
		return fmt.Errorf("%s %q: not a plain URL path segment", what, s)
	}
	return nil
}

const pathPrefix = "/v2/origin/custom/"

// Endpoint names the Chats API call req is for by its route, never by its
// ids, so its values are few enough for a metrics label: "send_message",
// "create_chat", "history", "connect", or "other" for any other request.
func Endpoint(req *http.Request) string {
	p, ok := strings.CutPrefix(req.URL.Path, pathPrefix)
	if !ok {
		return "other"
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) == 1 && req.Method == http.MethodPost:
		return "send_message"
	case len(parts) == 2 && parts[1] == "connect" && req.Method == http.MethodPost:
		return "connect"
	case len(parts) == 2 && parts[1] == "chats" && req.Method == http.MethodPost:
		return "create_chat"
	case len(parts) == 4 && parts[1] == "chats" && parts[3] == "history" && req.Method == http.MethodGet:
		return "history"
	}
	return "other"
}

// SendResult is the API's answer to new_message. Note the naming: MsgID is
// Kommo's id for the message and RefID echoes ours (Payload.MsgID).
type SendResult struct {
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"` // Kommo's chat id
	SenderID       string `json:"sender_id"`
	ReceiverID     string `json:"receiver_id"`
	RefID          string `json:"ref_id"`
}

// SendMessage posts p as a new_message event to the client's scope. The body
// is marshalled once and those exact bytes are signed and sent. A 2xx answer
// without new_message.msgid is a retryable, in-doubt *Error.
func (c *Client) SendMessage(ctx context.Context, p *wire.Payload) (*SendResult, error) {
	const op = "send message"
	if p == nil {
		return nil, invalid(op, errors.New("nil payload"))
	}
	path, err := c.scopedPath(op)
	if err != nil {
		return nil, err
	}
	body, merr := json.Marshal(wire.Event{EventType: wire.EventNewMessage, Payload: *p})
	if merr != nil {
		return nil, invalid(op, merr)
	}
	return call(ctx, c, op, http.MethodPost, path, "", body, decodeSend)
}

func decodeSend(_ int, b []byte) (*SendResult, error) {
	var out struct {
		NewMessage *SendResult `json:"new_message"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if out.NewMessage == nil || out.NewMessage.MsgID == "" {
		return nil, errors.New("response without new_message.msgid")
	}
	return out.NewMessage, nil
}

// Chat is the answer to create chat: Kommo's chat id (the one History takes)
// and Kommo's id for the user.
type Chat struct {
	ID     string
	UserID string
}

// chatUser is Participant without ref_id, which create chat no longer takes.
type chatUser struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Avatar      string        `json:"avatar,omitempty"`
	Profile     *wire.Profile `json:"profile,omitempty"`
	ProfileLink string        `json:"profile_link,omitempty"`
}

// CreateChat creates the chat for our conversationID with user as the
// client, or returns the existing one: the API is idempotent per
// conversation_id, so repeating it after an in-doubt failure is safe.
func (c *Client) CreateChat(ctx context.Context, conversationID string, user wire.Participant) (*Chat, error) {
	const op = "create chat"
	if conversationID == "" {
		return nil, invalid(op, errors.New("empty conversation id"))
	}
	if user.ID == "" || user.Name == "" {
		return nil, invalid(op, errors.New("user needs an id and a name"))
	}
	path, err := c.scopedPath(op, "chats")
	if err != nil {
		return nil, err
	}
	body, merr := json.Marshal(struct {
		ConversationID string   `json:"conversation_id"`
		User           chatUser `json:"user"`
	}{conversationID, chatUser{user.ID, user.Name, user.Avatar, user.Profile, user.ProfileLink}})
	if merr != nil {
		return nil, invalid(op, merr)
	}
	return call(ctx, c, op, http.MethodPost, path, "", body, decodeChat)
}

func decodeChat(_ int, b []byte) (*Chat, error) {
	var out struct {
		ID   string `json:"id"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if out.ID == "" {
		return nil, errors.New("response without chat id")
	}
	return &Chat{ID: out.ID, UserID: out.User.ID}, nil
}

// HistoryMessage is one message of a chat's history.
type HistoryMessage struct {
	Timestamp     int64               `json:"timestamp"`
	MsecTimestamp int64               `json:"msec_timestamp"`
	Sender        *HistoryParticipant `json:"sender,omitempty"`
	Receiver      *HistoryParticipant `json:"receiver,omitempty"`
	Message       HistoryBody         `json:"message"`
}

// HistoryParticipant is a sender or receiver in history. ID is Kommo's id;
// ClientID is ours (present for external participants only).
type HistoryParticipant struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name,omitempty"`
	Avatar   string `json:"avatar,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Email    string `json:"email,omitempty"`
}

// HistoryBody is the message of a history entry. ID is Kommo's message id;
// ClientID is our msgid (Payload.MsgID), the key for finding in-doubt sends.
type HistoryBody struct {
	ID           string         `json:"id"`
	ClientID     string         `json:"client_id,omitempty"`
	Type         string         `json:"type"`
	Text         string         `json:"text,omitempty"`
	Media        string         `json:"media,omitempty"`
	Thumbnail    string         `json:"thumbnail,omitempty"`
	FileName     string         `json:"file_name,omitempty"`
	FileSize     int64          `json:"file_size,omitempty"`
	MediaGroupID string         `json:"media_group_id,omitempty"`
	Location     *wire.Location `json:"location,omitempty"`
	Contact      *wire.Contact  `json:"contact,omitempty"`
}

// History returns one page of Kommo chat chatID's messages (chatID is Kommo's
// id, Chat.ID, not our conversation id), skipping offset messages. limit must
// be at least 1; above MaxHistoryLimit it is lowered to MaxHistoryLimit. A 204
// (no such chat, or no messages) returns (nil, nil). The signature covers the
// path only, not the query string.
func (c *Client) History(ctx context.Context, chatID string, offset, limit int) ([]HistoryMessage, error) {
	const op = "history"
	if err := checkSegment("chat id", chatID); err != nil {
		return nil, invalid(op, err)
	}
	if offset < 0 {
		return nil, invalid(op, fmt.Errorf("negative offset %d", offset))
	}
	if limit < 1 {
		return nil, invalid(op, fmt.Errorf("limit %d: want 1..%d", limit, MaxHistoryLimit))
	}
	limit = min(limit, MaxHistoryLimit)
	path, err := c.scopedPath(op, "chats", chatID, "history")
	if err != nil {
		return nil, err
	}
	query := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}.Encode()
	return call(ctx, c, op, http.MethodGet, path, query, nil, decodeHistory)
}

// decodeHistory returns nil for a 204 and a non-nil slice for any page.
func decodeHistory(status int, b []byte) ([]HistoryMessage, error) {
	if status == http.StatusNoContent {
		return nil, nil
	}
	var out struct {
		Messages []HistoryMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if out.Messages == nil {
		out.Messages = []HistoryMessage{}
	}
	return out.Messages, nil
}

// Connection is the answer to connect.
type Connection struct {
	ScopeID        string `json:"scope_id"`
	AccountID      string `json:"account_id"`
	Title          string `json:"title"`
	HookAPIVersion string `json:"hook_api_version"`
}

// Connect connects channel channelID to the account with amojo id accountID
// (hook API v2) and returns the scope id to use for every other call. An
// empty title leaves the channel's own name. It needs no ScopeID in Config.
func (c *Client) Connect(ctx context.Context, channelID, accountID, title string) (*Connection, error) {
	const op = "connect"
	if err := checkSegment("channel id", channelID); err != nil {
		return nil, invalid(op, err)
	}
	if accountID == "" {
		return nil, invalid(op, errors.New("empty account id"))
	}
	// Field order as in the documentation's example (and vector V1).
	body, merr := json.Marshal(struct {
		AccountID      string `json:"account_id"`
		Title          string `json:"title,omitempty"`
		HookAPIVersion string `json:"hook_api_version"`
	}{accountID, title, "v2"})
	if merr != nil {
		return nil, invalid(op, merr)
	}
	return call(ctx, c, op, http.MethodPost, pathPrefix+channelID+"/connect", "", body, decodeConnection)
}

func decodeConnection(_ int, b []byte) (*Connection, error) {
	var out Connection
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	if out.ScopeID == "" {
		return nil, errors.New("response without scope_id")
	}
	return &out, nil
}

func (c *Client) scopedPath(op string, elems ...string) (string, error) {
	if c.scopeID == "" {
		return "", invalid(op, errors.New("no scope id configured (run connect first)"))
	}
	return pathPrefix + strings.Join(append([]string{c.scopeID}, elems...), "/"), nil
}

// invalid is the error for a call that can never succeed as made.
func invalid(op string, err error) *Error {
	return &Error{Op: op, Kind: KindPermanent, Err: err}
}

// call makes one signed attempt and turns it into the call's answer.
func call[T any](ctx context.Context, c *Client, op, method, path, query string, body []byte, decode func(status int, body []byte) (T, error)) (T, error) {
	a := c.attempt(ctx, op, method, path, query, body)
	a.parentErr = ctx.Err()
	a.now = c.now()
	return result(a, decode)
}

// result is the answer to a finished attempt: on a 2xx the decoded body, else
// (and when decode fails) an *Error from classify. It does no I/O, so the
// fuzz tests drive it with arbitrary statuses and bodies.
func result[T any](a attempt, decode func(status int, body []byte) (T, error)) (T, error) {
	if a.err == nil && a.decodeErr == nil && a.status/100 == 2 {
		v, err := decode(a.status, a.body)
		if err == nil {
			return v, nil
		}
		a.decodeErr = err
	}
	var zero T
	return zero, classify(a)
}

// CloseIdleConnections closes the pooled connections and abandons dials no
// request waits for any more, under a WrapTransport wrapper too. Call it when
// done with the Client.
func (c *Client) CloseIdleConnections() {
	c.hc.CloseIdleConnections()
	if c.wrapped != nil {
		c.wrapped.CloseIdleConnections()
	}
}

// attempt signs with a fresh Date and makes one HTTP
// request, reading at most maxBytes of the response within the timeout.
func (c *Client) attempt(ctx context.Context, op, method, path, query string, body []byte) attempt {
	a := attempt{op: op}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		GotConn:      armOnGotConn(writeCheck(actx)),
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote.Store(info.Err == nil) },
	})
	u := *c.base
	u.Path, u.RawQuery = path, query
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u.String(), rd)
	if err != nil {
		a.err = err
		return a
	}
	signer.Sign(method, path, body, c.secret, c.now()).Apply(req.Header)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kommo-import")

	resp, err := c.hc.Do(req)
	if err != nil {
		// WroteRequest comes when the request is in the transport's buffer,
		// before the flush that a write check can refuse.
		var refused *RefusedError
		a.err, a.wrote = c.timeoutErr(actx, ctx, err), wrote.Load() && !errors.As(err, &refused)
		return a
	}
	defer resp.Body.Close()
	if c.base.Scheme == "https" && (resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0) {
		// A transport New could not inspect skipped the certificate checks.
		// The request is out, but nothing from an unverified peer is used.
		a.err, a.wrote = errUnverifiedTLS, true
		return a
	}
	a.status, a.header = resp.StatusCode, resp.Header
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	a.wrote = wrote.Load()
	switch {
	case err != nil:
		a.err = c.timeoutErr(actx, ctx, fmt.Errorf("read response: %w", err))
	case int64(len(a.body)) > c.maxBytes:
		a.body = a.body[:c.maxBytes]
		a.decodeErr = errTooLarge{c.maxBytes}
	}
	return a
}

// errUnverifiedTLS is the cause when an https response came over a connection
// whose certificate chain was not verified.
var errUnverifiedTLS = errors.New("TLS certificate of the server was not verified (the HTTP client's transport skips verification)")

// timeoutErr says so when the attempt's own deadline, not the caller's, ended it.
func (c *Client) timeoutErr(actx, parent context.Context, err error) error {
	if parent.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete response within %s: %w", c.timeout, err)
	}
	return err
}
