package chatsapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/wire"
)

// The tests in this file play a hostile or broken server: HTML or garbage
// instead of JSON, endless bodies, trickled bytes, silence, bad TLS.

// rawServer is a TCP server that speaks whatever handle writes. Close ends
// every connection and waits for every handler, so its goroutines are gone
// when a leak check counts.
type rawServer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newRawServer(t *testing.T, handle func(net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &rawServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = conn.Close()
				return
			}
			s.conns[conn] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				handle(conn)
				_ = conn.Close()
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *rawServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *rawServer) url(scheme string) string { return scheme + "://" + s.ln.Addr().String() }

// Handlers for rawServer.
var (
	// silent reads whatever comes (a request, a TLS hello) and never answers.
	silent = func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }
	// drop reads the request, then hangs up without a word.
	drop = func(c net.Conn) { _, _ = http.ReadRequest(bufio.NewReader(c)) }
	// notHTTP answers the request with bytes that are no HTTP response.
	notHTTP = func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			_, _ = io.WriteString(c, "\x00\x1b[2J<html>hello</html>\r\n\r\n")
		}
	}
)

// trickle answers the request with prefix at once, then slow one byte
// every 100ms, until the client hangs up.
func trickle(prefix, slow string) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		if _, err := io.WriteString(c, prefix); err != nil {
			return
		}
		for _, b := range []byte(slow) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, _ = io.Copy(io.Discard, c)
	}
}

const trickleHead = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"

// requirePrintableLine fails unless s is one line a terminal shows as is.
func requirePrintableLine(t *testing.T, s string, maxRunes int) {
	t.Helper()
	require.True(t, utf8.ValidString(s), "%q", s)
	for _, r := range s {
		require.True(t, r == ' ' || unicode.IsPrint(r), "rune %U in %q", r, s)
	}
	require.LessOrEqual(t, utf8.RuneCountInString(s), maxRunes, "%q", s)
}

// opCalls makes each of the client's calls; fn returns the call's error.
var opCalls = []struct {
	op string
	fn func(ctx context.Context, c *chatsapi.Client) error
}{
	{"send message", func(ctx context.Context, c *chatsapi.Client) error {
		res, err := c.SendMessage(ctx, textPayload("m-1", "hello"))
		if err == nil && res == nil {
			err = errors.New("nil result without an error")
		}
		return err
	}},
	{"create chat", func(ctx context.Context, c *chatsapi.Client) error {
		_, err := c.CreateChat(ctx, "conv", wire.Participant{ID: "u", Name: "n"})
		return err
	}},
	{"history", func(ctx context.Context, c *chatsapi.Client) error {
		_, err := c.History(ctx, "chat", 0, 10)
		return err
	}},
	{"connect", func(ctx context.Context, c *chatsapi.Client) error {
		_, err := c.Connect(ctx, "chan", "acc", "t")
		return err
	}},
}

// TestGarbageBodies: HTML, binary and endless junk where JSON belongs, on
// success and error statuses, for every call. The classification depends on
// the status only; the message names the status and shows a short,
// printable snippet of what came instead.
func TestGarbageBodies(t *testing.T) {
	bodies := []struct {
		name, body string
		snippet    string // Error() contains `body "` + snippet
	}{
		{
			name:    "html",
			body:    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\t<center><h1>Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
			snippet: `<html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>Bad Gateway</h1></center> </body> </html>"`,
		},
		{
			// Terminal escapes, a bidi override, a forged log line, invalid UTF-8.
			name:    "binary",
			body:    "\x00\x01\x1b[31mRED\x1b[0m\u202eevil\nlevel=ERROR msg=forged\x7f\xff\xfe",
			snippet: "\uFFFD\uFFFD\uFFFD[31mRED\uFFFD[0m\uFFFDevil level=ERROR msg=forged\uFFFD\uFFFD\"", // a run of invalid bytes is one U+FFFD
		},
		{
			name:    "endless line",
			body:    strings.Repeat("garbage\x1b", 100_000),
			snippet: strings.Repeat("garbage\uFFFD", 15) + "…\"",
		},
	}
	statuses := []struct {
		status  int
		kind    chatsapi.Kind
		inDoubt bool
	}{
		{200, chatsapi.KindRetryable, true},
		{201, chatsapi.KindRetryable, true},
		{400, chatsapi.KindPermanent, false},
		{401, chatsapi.KindPermanent, false},
		{403, chatsapi.KindBlocked, false},
		{404, chatsapi.KindPermanent, false},
		{422, chatsapi.KindPermanent, false},
		{500, chatsapi.KindRetryable, true},
		{502, chatsapi.KindRetryable, true},
		{503, chatsapi.KindRetryable, true},
	}
	var (
		mu     sync.Mutex
		status int
		body   string
	)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s, b := status, body
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(s)
		_, _ = io.WriteString(w, b)
	})
	c := newClient(t, f.srv.URL, nil)
	for _, call := range opCalls {
		for _, st := range statuses {
			for _, b := range bodies {
				t.Run(fmt.Sprintf("%s/%d/%s", call.op, st.status, b.name), func(t *testing.T) {
					mu.Lock()
					status, body = st.status, b.body
					mu.Unlock()
					err := call.fn(context.Background(), c)
					e, ok := chatsapi.AsError(err)
					require.True(t, ok, "%T %v", err, err)
					require.Equal(t, call.op, e.Op)
					require.Equal(t, st.status, e.Status)
					require.Equal(t, st.kind, e.Kind, "%v", err)
					require.Equal(t, st.inDoubt, e.InDoubt, "%v", err)
					require.Empty(t, e.ErrorType)
					require.LessOrEqual(t, len(e.Body), 2<<10)

					msg := err.Error()
					require.True(t, strings.HasPrefix(msg, fmt.Sprintf("%s: %d %s", call.op, st.status, http.StatusText(st.status))), msg)
					require.Contains(t, msg, `: body "`+b.snippet, msg)
					requirePrintableLine(t, msg, 500)
					requireNoSecret(t, err)
				})
			}
		}
	}
}

// TestAPIErrorTextIsPrintable: error_type and error_description come from
// the server too; they reach the message one line and capped.
func TestAPIErrorTextIsPrintable(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, `{"error_type":"BAD\u001b[2J\r\nlevel=ERROR","error_description":"`+strings.Repeat("\\u202e long ", 10_000)+`"}`)
	})
	c := newClient(t, f.srv.URL, nil)
	_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	e, ok := chatsapi.AsError(err)
	require.True(t, ok)
	require.Equal(t, chatsapi.KindPermanent, e.Kind)
	require.Equal(t, "BAD\uFFFD[2J level=ERROR", e.ErrorType)
	requirePrintableLine(t, e.Description, 201)
	require.True(t, strings.HasPrefix(err.Error(), "send message: 400 BAD\uFFFD[2J level=ERROR: \uFFFD long \uFFFD long"), err.Error())
	requirePrintableLine(t, err.Error(), 500)
}

// streamForever writes up to total bytes of body in 32 KiB chunks after
// prefix, counting what the connection accepted, until the client hangs up.
func streamForever(status int, prefix string, total int64, written *atomic.Int64, done chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		n, _ := io.WriteString(w, prefix)
		written.Add(int64(n))
		chunk := []byte(strings.Repeat("a", 32<<10))
		for written.Load() < total {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
}

// TestHugeBodyReadWithCap streams a 50 MB body. The client reads at most
// MaxResponseBytes and hangs up; the server's count of bytes the connection
// took stays near the cap plus socket buffers, far below 50 MB.
func TestHugeBodyReadWithCap(t *testing.T) {
	const total = 50 << 20
	const limit = 64 << 10
	tests := []struct {
		name    string
		status  int
		kind    chatsapi.Kind
		inDoubt bool
		msg     string
	}{
		{"200", 200, chatsapi.KindRetryable, true, "send message: 200 OK: response body over 65536 bytes: body \"{\\\"new_message\\\":{\\\"msgid\\\":\\\"aaaa"},
		{"400", 400, chatsapi.KindPermanent, false, "send message: 400 Bad Request: body \"{\\\"new_message\\\":{\\\"msgid\\\":\\\"aaaa"},
		{"502", 502, chatsapi.KindRetryable, true, "send message: 502 Bad Gateway: body \"{\\\"new_message\\\":{\\\"msgid\\\":\\\"aaaa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var written atomic.Int64
			done := make(chan struct{})
			srv := httptest.NewServer(streamForever(tt.status, `{"new_message":{"msgid":"`, total, &written, done))
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL, func(cfg *chatsapi.Config) { cfg.MaxResponseBytes = limit })

			_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tt.kind, e.Kind, "%v", err)
			require.Equal(t, tt.inDoubt, e.InDoubt)
			require.Equal(t, tt.status, e.Status)
			require.True(t, strings.HasPrefix(err.Error(), tt.msg), err.Error())
			require.LessOrEqual(t, len(e.Body), 2<<10)

			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("server still writing after the client returned: %d bytes so far", written.Load())
			}
			// Loopback socket buffers hold a few MiB at most.
			require.Less(t, written.Load(), int64(16<<20), "the client read on after the cap")
			t.Logf("server wrote %d bytes of %d", written.Load(), total)
		})
	}
}

// TestSlowServersBoundedByTimeout: silence, trickled headers, a trickled
// body and a TLS handshake that never comes all end at the per-attempt
// Timeout (plus slack), not at the transport's longer timeouts or never.
func TestSlowServersBoundedByTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	tests := []struct {
		name    string
		scheme  string
		handle  func(net.Conn)
		status  int
		inDoubt bool
	}{
		{"never answers", "http", silent, 0, true},
		{"trickles the headers", "http", trickle("", trickleHead), 0, true},
		{"trickles the body", "http", trickle(trickleHead, `{"new_message":{"msgid":"amo-1"}}`), 200, true},
		{"never speaks TLS", "https", silent, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRawServer(t, tt.handle)
			c := newClient(t, srv.url(tt.scheme), func(cfg *chatsapi.Config) { cfg.Timeout = timeout })
			// A backstop far past Timeout, so a missing bound fails the
			// assertions below instead of hanging the test.
			ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
			defer cancel()

			start := time.Now()
			_, err := c.SendMessage(ctx, textPayload("m-1", "hi"))
			elapsed := time.Since(start)

			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%v", err)
			require.Less(t, elapsed, timeout+2*time.Second, "%v", err)
			require.NoError(t, ctx.Err(), "the backstop ended the call, not Timeout")
			require.Equal(t, chatsapi.KindRetryable, e.Kind, "%v", err)
			require.Equal(t, tt.inDoubt, e.InDoubt, "%v", err)
			require.Equal(t, tt.status, e.Status, "%v", err)
			// The default transport's TLS handshake timeout equals Timeout
			// here, so which of the two fires first is a coin toss.
			var timeoutErr net.Error
			require.ErrorAs(t, err, &timeoutErr)
			require.True(t, timeoutErr.Timeout(), "%v", err)
			if tt.scheme == "http" {
				require.ErrorIs(t, err, context.DeadlineExceeded)
				require.Contains(t, err.Error(), "no complete response within 500ms")
			}
			requirePrintableLine(t, err.Error(), 800)
		})
	}
}

// TestBrokenResponses: a hang-up after the request and bytes that are not
// HTTP at all are retryable and in doubt (the request was out).
func TestBrokenResponses(t *testing.T) {
	for name, h := range map[string]func(net.Conn){"hang-up": drop, "not HTTP": notHTTP} {
		t.Run(name, func(t *testing.T) {
			srv := newRawServer(t, h)
			c := newClient(t, srv.url("http"), nil)
			_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, chatsapi.KindRetryable, e.Kind, "%v", err)
			require.True(t, e.InDoubt, "%v", err)
			require.Zero(t, e.Status)
			requirePrintableLine(t, err.Error(), 800)
		})
	}
}

// newTLSServer is httptest.NewTLSServer without the log line for every
// handshake a client refuses.
func newTLSServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}

// insecureTransport skips certificate checks.
func insecureTransport() *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the point of the test
}

// wrapped hides a transport from New's inspection, like a metrics wrapper.
type wrapped struct{ next http.RoundTripper }

func (w wrapped) RoundTrip(r *http.Request) (*http.Response, error) { return w.next.RoundTrip(r) }

// TestTLSVerificationCannotBeTurnedOff: a self-signed server is refused
// however the HTTP client is configured.
func TestTLSVerificationCannotBeTurnedOff(t *testing.T) {
	srv := newTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"new_message":{"msgid":"amo-1","ref_id":"m-1"}}`)
	}))
	t.Cleanup(srv.Close)

	t.Run("New refuses what it can see", func(t *testing.T) {
		for name, tr := range map[string]*http.Transport{
			"InsecureSkipVerify": insecureTransport(),
			"own TLS dialer": {DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return tls.Dial(network, addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the point of the test
			}},
		} {
			_, err := chatsapi.New(chatsapi.Config{BaseURL: srv.URL, Secret: testSecret, HTTPClient: &http.Client{Transport: tr}})
			require.ErrorContains(t, err, "verification", name)
		}
	})

	t.Run("a loosened http.DefaultTransport is not used", func(t *testing.T) {
		old := http.DefaultTransport
		http.DefaultTransport = insecureTransport()
		t.Cleanup(func() { http.DefaultTransport = old })
		for name, hc := range map[string]*http.Client{"no HTTPClient": nil, "HTTPClient without Transport": {}} {
			c := newClient(t, srv.URL, func(cfg *chatsapi.Config) { cfg.HTTPClient = hc })
			_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
			var certErr *tls.CertificateVerificationError
			require.ErrorAs(t, err, &certErr, name)
			e, ok := chatsapi.AsError(err)
			require.True(t, ok)
			require.Equal(t, chatsapi.KindRetryable, e.Kind)
			require.False(t, e.InDoubt)
		}
	})

	t.Run("a hidden insecure transport fails every call", func(t *testing.T) {
		c := newClient(t, srv.URL, func(cfg *chatsapi.Config) {
			cfg.HTTPClient = &http.Client{Transport: wrapped{insecureTransport()}}
		})
		for _, call := range opCalls {
			err := call.fn(context.Background(), c)
			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%s: %v", call.op, err)
			require.ErrorContains(t, err, "was not verified")
			require.Equal(t, chatsapi.KindRetryable, e.Kind)
			require.True(t, e.InDoubt, "the request went out")
			require.Zero(t, e.Status, "nothing from an unverified peer is used")
			require.Empty(t, e.Body)
		}
	})

	t.Run("trusting the server's CA is fine", func(t *testing.T) {
		c := newClient(t, srv.URL, func(cfg *chatsapi.Config) { cfg.HTTPClient = &http.Client{Transport: wrapped{srv.Client().Transport}} })
		_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
		require.NoError(t, err)
	})
}

// settledGoroutines waits until the goroutine count stops falling and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// requireGoroutinesBack polls until at most baseline goroutines run, and
// fails with every goroutine's stack if that does not happen within wait.
func requireGoroutinesBack(t *testing.T, baseline int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before the calls:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoGoroutineLeak makes many failing calls of every kind at once, closes
// the clients' idle connections and expects the goroutine count back at its
// baseline, taken with the servers already listening. The servers stay up
// while it counts: a connection the client kept would keep a goroutine on
// each side, where closing the servers first would end both and hide it.
// The clients of fast failures get a long Timeout, so the attempt's
// deadline cleans nothing up by accident.
func TestNoGoroutineLeak(t *testing.T) {
	selfSigned := newTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 256 { // 8 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := 200
		if strings.HasSuffix(r.URL.Path, "/history") {
			code = 502
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "<html>\x00garbage</html>")
	}))
	for _, srv := range []*httptest.Server{selfSigned, huge, garbage} {
		t.Cleanup(srv.Close)
	}
	raw := map[string]*rawServer{
		"hang": newRawServer(t, silent), "trickle": newRawServer(t, trickle("HTTP/1.1 200 OK\r\n", "Content-Length: 10\r\n\r\n{}")),
		"drop": newRawServer(t, drop), "not HTTP": newRawServer(t, notHTTP), "TLS hang": newRawServer(t, silent),
	}
	baseline := settledGoroutines()

	kinds := []struct {
		name    string
		url     string
		timeout time.Duration
	}{
		{"hang", raw["hang"].url("http"), 300 * time.Millisecond},
		{"trickle", raw["trickle"].url("http"), 300 * time.Millisecond},
		{"TLS hang", raw["TLS hang"].url("https"), 300 * time.Millisecond},
		{"drop", raw["drop"].url("http"), time.Minute},
		{"not HTTP", raw["not HTTP"].url("http"), time.Minute},
		{"garbage", garbage.URL, time.Minute},
		{"huge body", huge.URL, time.Minute},
		{"self-signed TLS", selfSigned.URL, time.Minute},
	}

	const callsPerKind = 12
	var wg sync.WaitGroup
	errs := make(chan error, len(kinds)*callsPerKind)
	var clients []*chatsapi.Client
	for _, k := range kinds {
		c := newClient(t, k.url, func(cfg *chatsapi.Config) {
			cfg.Timeout, cfg.MaxResponseBytes = k.timeout, 64<<10
		})
		clients = append(clients, c)
		for i := range callsPerKind {
			call := opCalls[i%len(opCalls)]
			wg.Go(func() {
				if err := call.fn(context.Background(), c); err == nil {
					errs <- fmt.Errorf("%s/%s: no error", k.name, call.op)
				} else if _, ok := chatsapi.AsError(err); !ok {
					errs <- fmt.Errorf("%s/%s: %T %v", k.name, call.op, err, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	for _, c := range clients {
		c.CloseIdleConnections()
	}
	requireGoroutinesBack(t, baseline, 5*time.Second)
}
