package chatsapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/wire"
)

const (
	sigBody = `{"status":0,"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE","error_description":"invalid signature"}`
	nginx   = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

func TestSendMessageErrors(t *testing.T) {
	serverDate := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		timeout     time.Duration
		kind        chatsapi.Kind
		status      int
		inDoubt     bool
		errorType   string
		description string
		retryAfter  time.Duration
		serverDate  bool
		errIs       error
		msg         string // exact Error(), when given
		contains    string // substring of Error(), when given
		maxBody     int
	}{
		{
			name: "400 with body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 400, `{"status":0,"error_code":400,"error_type":"INVALID_DATA","error_description":"text is required"}`)
			},
			kind: chatsapi.KindPermanent, status: 400, errorType: "INVALID_DATA", description: "text is required",
			msg: "send message: 400 INVALID_DATA: text is required",
		},
		{
			name: "400 without body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(400)
			},
			kind: chatsapi.KindPermanent, status: 400, msg: "send message: 400 Bad Request",
		},
		{
			name: "404 origin not registered",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 404, `{"status":0,"error_code":404,"error_type":"ORIGIN_NOT_REGISTERED","error_description":"NOT_FOUND"}`)
			},
			kind: chatsapi.KindPermanent, status: 404, errorType: chatsapi.ErrorTypeNotRegistered, description: "NOT_FOUND",
			msg: "send message: 404 ORIGIN_NOT_REGISTERED: NOT_FOUND",
		},
		{
			name: "403 invalid signature",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", serverDate.Format(http.TimeFormat))
				writeJSON(w, 403, sigBody)
			},
			kind: chatsapi.KindBadSignature, status: 403, errorType: chatsapi.ErrorTypeInvalidSignature,
			description: "invalid signature", serverDate: true,
			msg: "send message: 403 ORIGIN_INVALID_SIGNATURE: invalid signature",
		},
		{
			name: "403 HTML block page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(403)
				_, _ = io.WriteString(w, nginx)
			},
			kind: chatsapi.KindBlocked, status: 403,
			msg: `send message: 403 Forbidden: body "<html> <head><title>403 Forbidden</title></head> <body> <center><h1>403 Forbidden</h1></center> <hr><center>nginx</cente…"`,
		},
		{
			name: "403 JSON of another type",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 403, `{"title":"Forbidden","type":"https://httpstatus.es/403","status":403,"detail":"Account is blocked"}`)
			},
			kind: chatsapi.KindBlocked, status: 403, errorType: "Forbidden", description: "Account is blocked",
		},
		{
			name: "429 Retry-After header wins over body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "120")
				writeJSON(w, 429, `{"title":"Too Many Requests","type":"https://httpstatus.es/429","status":429,"detail":"slow down","retry_after":300}`)
			},
			kind: chatsapi.KindRateLimited, status: 429, retryAfter: 120 * time.Second,
			errorType: "Too Many Requests", description: "slow down",
		},
		{
			name: "429 only JSON retry_after",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 429, `{"title":"Too Many Requests","status":429,"detail":"slow down","retry_after":300}`)
			},
			kind: chatsapi.KindRateLimited, status: 429, retryAfter: 300 * time.Second,
			errorType: "Too Many Requests", description: "slow down",
		},
		{
			name: "429 Retry-After as HTTP date",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Date", serverDate.Format(http.TimeFormat))
				w.Header().Set("Retry-After", serverDate.Add(90*time.Second).Format(http.TimeFormat))
				w.WriteHeader(429)
			},
			kind: chatsapi.KindRateLimited, status: 429, retryAfter: 90 * time.Second, serverDate: true,
		},
		{
			name: "500 main-API shape",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 500, `{"title":"ErrInternalServer","status":500,"detail":"boom","trace_id":"abc"}`)
			},
			kind: chatsapi.KindRetryable, status: 500, inDoubt: true, errorType: "ErrInternalServer", description: "boom",
			msg: "send message: 500 ErrInternalServer: boom (in doubt)",
		},
		{
			name: "503 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(503)
			},
			kind: chatsapi.KindRetryable, status: 503, inDoubt: true, retryAfter: 5 * time.Second,
			msg: "send message: 503 Service Unavailable (in doubt)",
		},
		{
			name: "408 nothing processed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(408)
			},
			kind: chatsapi.KindRetryable, status: 408,
		},
		{
			name: "redirect is not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			},
			kind: chatsapi.KindPermanent, status: 307,
		},
		{
			name: "200 without msgid",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `{"new_message":{"conversation_id":"c"}}`)
			},
			kind: chatsapi.KindRetryable, status: 200, inDoubt: true, contains: "without new_message.msgid",
		},
		{
			name: "200 not JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `<html>ok</html>`)
			},
			kind: chatsapi.KindRetryable, status: 200, inDoubt: true, contains: "decode response",
		},
		{
			name: "204 on send",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(204)
			},
			kind: chatsapi.KindRetryable, status: 204, inDoubt: true,
		},
		{
			name: "200 huge body is capped",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, `{"new_message":{"msgid":"amo-1","pad":"`+strings.Repeat("a", 3<<20)+`"}}`)
			},
			kind: chatsapi.KindRetryable, status: 200, inDoubt: true, contains: "over 1048576 bytes", maxBody: 2 << 10,
		},
		{
			name: "400 huge body is capped",
			handler: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 400, strings.Repeat("é", 2<<20))
			},
			kind: chatsapi.KindPermanent, status: 400, maxBody: 2 << 10,
		},
		{
			name: "200 cut short mid-body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(200)
				_, _ = io.WriteString(w, `{"new_message":`)
				w.(http.Flusher).Flush()
				hijackClose(w)
			},
			kind: chatsapi.KindRetryable, status: 200, inDoubt: true, errIs: io.ErrUnexpectedEOF,
		},
		{
			name: "hangs past the timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			timeout: 300 * time.Millisecond,
			kind:    chatsapi.KindRetryable, inDoubt: true, errIs: context.DeadlineExceeded,
			contains: "no complete response within 300ms",
		},
		{
			name: "hangs mid-body past the timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(200)
				_, _ = io.WriteString(w, `{"new_message":`)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			},
			timeout: 300 * time.Millisecond,
			kind:    chatsapi.KindRetryable, status: 200, inDoubt: true, errIs: context.DeadlineExceeded,
		},
		{
			name: "connection closed after the body was read",
			handler: func(w http.ResponseWriter, r *http.Request) {
				hijackClose(w)
			},
			kind: chatsapi.KindRetryable, inDoubt: true, errIs: io.EOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.handler)
			c := newClient(t, f.srv.URL, func(cfg *chatsapi.Config) {
				if tt.timeout != 0 {
					cfg.Timeout = tt.timeout
				}
			})
			res, err := c.SendMessage(context.Background(), textPayload("m-1", "hello"))
			require.Nil(t, res)
			e, ok := chatsapi.AsError(err)
			require.True(t, ok, "%T %v", err, err)

			require.Equal(t, "send message", e.Op)
			require.Equal(t, tt.kind, e.Kind, "%v", err)
			require.Equal(t, tt.status, e.Status, "%v", err)
			require.Equal(t, tt.inDoubt, e.InDoubt, "%v", err)
			require.Equal(t, tt.errorType, e.ErrorType)
			require.Equal(t, tt.description, e.Description)
			require.Equal(t, tt.retryAfter, e.RetryAfter)
			// Go's server always sends Date; no response, no date.
			require.Equal(t, tt.status != 0, !e.ServerDate.IsZero())
			if tt.serverDate {
				require.True(t, serverDate.Equal(e.ServerDate))
			}
			require.Equal(t, tt.kind == chatsapi.KindRetryable || tt.kind == chatsapi.KindRateLimited, e.Retryable())
			require.Equal(t, e.Retryable(), e.Temporary())
			if tt.errIs != nil {
				require.ErrorIs(t, err, tt.errIs)
			}
			if tt.msg != "" {
				require.Equal(t, tt.msg, err.Error())
			}
			if tt.contains != "" {
				require.Contains(t, err.Error(), tt.contains)
			}
			if tt.maxBody != 0 {
				require.LessOrEqual(t, len(e.Body), tt.maxBody)
				require.NotEmpty(t, e.Body)
			}
			requireNoSecret(t, err)
			// One attempt, never a retry or a followed redirect.
			require.Len(t, f.requests(), 1)
		})
	}
}

// hijackClose drops the connection without an answer, or mid-answer when
// the handler flushed a part first.
func hijackClose(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	_ = conn.Close()
}

func requireNoSecret(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err)} {
		require.NotContains(t, s, testSecret.Reveal())
	}
	if e, ok := chatsapi.AsError(err); ok {
		require.NotContains(t, fmt.Sprintf("%#v", *e), testSecret.Reveal())
		require.NotContains(t, e.Body, testSecret.Reveal())
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	c := newClient(t, "http://"+addr, nil)
	_, err = c.SendMessage(context.Background(), textPayload("m-1", "hi"))
	e, ok := chatsapi.AsError(err)
	require.True(t, ok)
	require.Equal(t, chatsapi.KindRetryable, e.Kind)
	require.False(t, e.InDoubt)
	require.Zero(t, e.Status)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.True(t, strings.HasPrefix(err.Error(), "send message: "), err.Error())
	requireNoSecret(t, err)
}

// TestTimeoutBeforeWritten sends a body far larger than the socket buffers to
// a peer that never reads: the attempt times out while still writing, so the
// API cannot have seen the request. Linux grows a receive buffer only as the
// application reads, so what fits in flight is about the sender's buffer
// (tcp_wmem max, 4 MiB by default); the small read buffer is extra margin.
func TestTimeoutBeforeWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
			accepted <- conn // hold it open, never read
		}
	}()
	t.Cleanup(func() {
		select {
		case conn := <-accepted:
			_ = conn.Close()
		default:
		}
	})

	c := newClient(t, "http://"+ln.Addr().String(), func(cfg *chatsapi.Config) { cfg.Timeout = 300 * time.Millisecond })
	_, err = c.SendMessage(context.Background(), textPayload("m-1", strings.Repeat("x", 16<<20)))
	e, ok := chatsapi.AsError(err)
	require.True(t, ok)
	require.Equal(t, chatsapi.KindRetryable, e.Kind)
	require.False(t, e.InDoubt, "%v", err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCallerCancel(t *testing.T) {
	t.Run("after the request was written", func(t *testing.T) {
		arrived := make(chan struct{})
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		})
		c := newClient(t, f.srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		_, err := c.SendMessage(ctx, textPayload("m-1", "hi"))
		e, ok := chatsapi.AsError(err)
		require.True(t, ok)
		require.Equal(t, context.Canceled, e.Err)
		require.ErrorIs(t, err, context.Canceled)
		require.True(t, e.InDoubt)
		require.Equal(t, chatsapi.KindRetryable, e.Kind)
	})
	t.Run("before anything was sent", func(t *testing.T) {
		f := newFake(t, nil)
		c := newClient(t, f.srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.SendMessage(ctx, textPayload("m-1", "hi"))
		e, ok := chatsapi.AsError(err)
		require.True(t, ok)
		require.Equal(t, context.Canceled, e.Err)
		require.False(t, e.InDoubt)
		require.Empty(t, f.requests())
	})
	t.Run("caller deadline", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		c := newClient(t, f.srv.URL, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.History(ctx, "chat-1", 0, 10)
		e, ok := chatsapi.AsError(err)
		require.True(t, ok)
		require.Equal(t, context.DeadlineExceeded, e.Err)
		require.Equal(t, "history", e.Op)
	})
}

// TestOtherOpsClassify checks that create chat, history and connect share the
// classification, including their own unusable-2xx cases.
func TestOtherOpsClassify(t *testing.T) {
	calls := map[string]func(*chatsapi.Client) error{
		"create chat": func(c *chatsapi.Client) error {
			_, err := c.CreateChat(context.Background(), "conv", wire.Participant{ID: "u", Name: "n"})
			return err
		},
		"history": func(c *chatsapi.Client) error {
			_, err := c.History(context.Background(), "chat", 0, 10)
			return err
		},
		"connect": func(c *chatsapi.Client) error {
			_, err := c.Connect(context.Background(), "chan", "acc", "t")
			return err
		},
	}
	answers := []struct {
		name    string
		status  int
		body    string
		kind    chatsapi.Kind
		inDoubt bool
	}{
		{"signature", 403, sigBody, chatsapi.KindBadSignature, false},
		{"blocked", 403, nginx, chatsapi.KindBlocked, false},
		{"rate limited", 429, `{"retry_after":300}`, chatsapi.KindRateLimited, false},
		{"server error", 502, ``, chatsapi.KindRetryable, true},
		{"bad request", 400, `{"error_type":"INVALID_DATA","error_description":"x"}`, chatsapi.KindPermanent, false},
		{"empty 200", 200, `{}`, chatsapi.KindRetryable, true},
		{"garbage 200", 200, `{"messages":`, chatsapi.KindRetryable, true},
	}
	for op, call := range calls {
		for _, a := range answers {
			if op == "history" && a.name == "empty 200" {
				continue // an empty history object is a valid empty page
			}
			t.Run(op+"/"+a.name, func(t *testing.T) {
				f := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.status, a.body) })
				c := newClient(t, f.srv.URL, nil)
				err := call(c)
				e, ok := chatsapi.AsError(err)
				require.True(t, ok, "%v", err)
				require.Equal(t, op, e.Op)
				require.Equal(t, a.kind, e.Kind, "%v", err)
				require.Equal(t, a.inDoubt, e.InDoubt, "%v", err)
				require.Equal(t, a.status, e.Status)
				requireNoSecret(t, err)
			})
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[chatsapi.Kind]string{
		chatsapi.KindPermanent: "permanent", chatsapi.KindRetryable: "retryable", chatsapi.KindRateLimited: "rate limited",
		chatsapi.KindBadSignature: "bad signature", chatsapi.KindBlocked: "blocked", chatsapi.Kind(42): "Kind(42)",
	} {
		require.Equal(t, want, k.String())
	}
}

func TestAsErrorWrapped(t *testing.T) {
	inner := &chatsapi.Error{Op: "send message", Status: 500, Kind: chatsapi.KindRetryable}
	e, ok := chatsapi.AsError(fmt.Errorf("conversation c-1: %w", inner))
	require.True(t, ok)
	require.Same(t, inner, e)
	_, ok = chatsapi.AsError(errors.New("other"))
	require.False(t, ok)
	_, ok = chatsapi.AsError(nil)
	require.False(t, ok)
}

// TestAnAbandonedRequestCannotArriveLater: a request whose attempt timed out
// (the API's network black-holed) must not stay in the kernel's send queue
// and reach the API after the importer looked the message up and sent it
// again. The client's connection is closed with a reset when the attempt
// ends: the server reads ECONNRESET, not the rest of the request, and
// nothing more arrives afterwards. Before, the connection was closed
// gracefully (FIN after the queued bytes), and with HTTP/2 not at all.
func TestAnAbandonedRequestCannotArriveLater(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		// A receive buffer too small for the body: most of the request waits
		// in the client's send queue, as it would behind a black hole.
		_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
		time.Sleep(800 * time.Millisecond) // the client gives up meanwhile
		buf := make([]byte, 32<<10)
		for {
			if _, err := conn.Read(buf); err != nil {
				got <- err
				return
			}
		}
	}()
	c := newClient(t, "http://"+ln.Addr().String(), func(cfg *chatsapi.Config) { cfg.Timeout = 300 * time.Millisecond })
	_, err = c.SendMessage(context.Background(), textPayload("m-1", strings.Repeat("x", 8<<20)))
	require.Error(t, err)
	select {
	case err := <-got:
		require.ErrorIs(t, err, syscall.ECONNRESET, "the abandoned request's bytes must be discarded, not delivered")
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept reading the abandoned request")
	}
}
