package chatsapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
)

func TestEndpoint(t *testing.T) {
	tests := []struct {
		method, path, want string
	}{
		{http.MethodPost, "/v2/origin/custom/scope_1", "send_message"},
		{http.MethodPost, "/v2/origin/custom/scope_1/chats", "create_chat"},
		{http.MethodGet, "/v2/origin/custom/scope_1/chats/8e3e7640-49af/history", "history"},
		{http.MethodPost, "/v2/origin/custom/chan-1/connect", "connect"},
		{http.MethodGet, "/v2/origin/custom/scope_1", "other"},
		{http.MethodGet, "/v2/origin/custom/scope_1/chats", "other"},
		{http.MethodPost, "/v2/origin/custom/scope_1/chats/c/history", "other"},
		{http.MethodGet, "/v2/origin/custom/chan-1/connect", "other"},
		{http.MethodPost, "/v2/origin/custom/scope_1/chats/c/messages", "other"},
		{http.MethodGet, "/metrics", "other"},
		{http.MethodPost, "/", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			require.Equal(t, tt.want, chatsapi.Endpoint(httptest.NewRequest(tt.method, tt.path, nil)))
		})
	}
}

// recordingTransport is a wrapper that does not forward
// CloseIdleConnections, as a metrics wrapper easily forgets to.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string // Endpoint of every request
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.seen = append(rt.seen, chatsapi.Endpoint(r))
	rt.mu.Unlock()
	return rt.next.RoundTrip(r)
}

// wrapWith returns a Config modifier that wraps the transport in a
// recordingTransport and stores it in *out.
func wrapWith(out **recordingTransport) func(*chatsapi.Config) {
	return func(cfg *chatsapi.Config) {
		cfg.WrapTransport = func(next http.RoundTripper) http.RoundTripper {
			*out = &recordingTransport{next: next}
			return *out
		}
	}
}

// TestWrapTransportSeesEveryCall: every call goes through the wrapper, which
// Endpoint names by the call.
func TestWrapTransportSeesEveryCall(t *testing.T) {
	f := newFake(t, nil)
	var rt *recordingTransport
	c := newClient(t, f.srv.URL, wrapWith(&rt))
	for _, call := range opCalls {
		require.NoError(t, call.fn(context.Background(), c), call.op)
	}
	require.Equal(t, []string{"send_message", "create_chat", "history", "connect"}, rt.seen)
}

func TestWrapTransportNil(t *testing.T) {
	_, err := chatsapi.New(chatsapi.Config{Secret: testSecret, WrapTransport: func(http.RoundTripper) http.RoundTripper { return nil }})
	require.EqualError(t, err, "chats api: WrapTransport returned nil")
}

// hugeHeaders answers every request with about n bytes of response headers.
func hugeHeaders(n int) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
		for b.Len() < n {
			b.WriteString("X-Pad: " + strings.Repeat("a", 1000) + "\r\n")
		}
		body := `{"new_message":{"msgid":"amo-1"}}`
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
		_, _ = io.WriteString(c, b.String())
	}
}

// TestResponseHeaderCap: 100 KiB of response headers fail the call, with
// the default transport and with it wrapped; 60 KiB pass.
func TestResponseHeaderCap(t *testing.T) {
	huge := newRawServer(t, hugeHeaders(100<<10))
	fits := newRawServer(t, hugeHeaders(60<<10))
	for _, wrap := range []bool{false, true} {
		t.Run(map[bool]string{false: "default transport", true: "wrapped"}[wrap], func(t *testing.T) {
			var rt *recordingTransport
			client := func(url string) *chatsapi.Client {
				if wrap {
					return newClient(t, url, wrapWith(&rt))
				}
				return newClient(t, url, nil)
			}
			_, err := client(huge.url("http")).SendMessage(context.Background(), textPayload("m-1", "hi"))
			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%v", err)
			require.ErrorContains(t, err, "server response headers exceeded 65536 bytes")
			require.Equal(t, chatsapi.KindRetryable, e.Kind)
			require.True(t, e.InDoubt, "the request was out")
			if wrap {
				require.Equal(t, []string{"send_message"}, rt.seen)
			}

			_, err = client(fits.url("http")).SendMessage(context.Background(), textPayload("m-1", "hi"))
			require.NoError(t, err)
		})
	}
}

// TestWrappedTransportKeepsHandshakeCap: a server that accepts TCP and
// never speaks TLS holds the dial net/http goes on with after the attempt
// gave up only for the default transport's handshake cap, min(10s,
// Timeout), wrapper or not. Nothing closes idle connections here: the cap
// alone must end that dial, long before the 10s a copied transport had.
func TestWrappedTransportKeepsHandshakeCap(t *testing.T) {
	srv := newRawServer(t, silent)
	baseline := settledGoroutines()
	var rt *recordingTransport
	c := newClient(t, srv.url("https"), func(cfg *chatsapi.Config) {
		wrapWith(&rt)(cfg)
		cfg.Timeout = 300 * time.Millisecond
	})
	start := time.Now()
	_, err := c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	require.Error(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
	requireGoroutinesBack(t, baseline, 5*time.Second)
	require.Len(t, rt.seen, 1)
}

// TestCloseIdleConnectionsThroughWrapper: CloseIdleConnections closes the
// pooled connections of a wrapped transport although the wrapper does not
// forward it.
func TestCloseIdleConnectionsThroughWrapper(t *testing.T) {
	f := newFake(t, nil)
	baseline := settledGoroutines()
	var rt *recordingTransport
	c := newClient(t, f.srv.URL, wrapWith(&rt))
	for _, call := range opCalls {
		require.NoError(t, call.fn(context.Background(), c), call.op)
	}
	c.CloseIdleConnections()
	requireGoroutinesBack(t, baseline, 5*time.Second)
}
