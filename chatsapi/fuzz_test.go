package chatsapi

import (
	"net/http"
	"strconv"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// fuzzOps are the four calls' decoders, picked by the fuzzer's op byte.
var fuzzOps = []struct {
	op     string
	decode func(t *testing.T, a attempt) error // runs result with the call's decoder
}{
	{"send message", func(t *testing.T, a attempt) error {
		v, err := result(a, decodeSend)
		if err == nil {
			require.NotNil(t, v)
			require.NotEmpty(t, v.MsgID)
		}
		return err
	}},
	{"create chat", func(t *testing.T, a attempt) error {
		v, err := result(a, decodeChat)
		if err == nil {
			require.NotNil(t, v)
			require.NotEmpty(t, v.ID)
		}
		return err
	}},
	{"history", func(t *testing.T, a attempt) error {
		v, err := result(a, decodeHistory)
		if err == nil {
			// nil only for 204, a page (maybe empty) otherwise.
			require.Equal(t, a.status == http.StatusNoContent, v == nil)
		}
		return err
	}},
	{"connect", func(t *testing.T, a attempt) error {
		v, err := result(a, decodeConnection)
		if err == nil {
			require.NotNil(t, v)
			require.NotEmpty(t, v.ScopeID)
		}
		return err
	}},
}

// FuzzDecodeResponse feeds any status, Retry-After header and body to each
// call's decoding and to classify, as a finished attempt would. It must never
// panic; success only on a 2xx with what the call promises; every failure a
// *Error with that status, the Kind the status dictates, a sane RetryAfter
// and a one-line printable message. Seeds: testdata/fuzz/FuzzDecodeResponse
// (the documented bodies of the reference, §3–4).
func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, op uint8, status int, retryAfter string, body []byte) {
		// net/http only ever reports a three-digit status.
		if status < 100 || status > 999 {
			status = 100 + int(uint(status)%900)
		}
		call := fuzzOps[int(op)%len(fuzzOps)]
		a := attempt{op: call.op, status: status, header: http.Header{}, body: body}
		if retryAfter != "" {
			a.header.Set("Retry-After", retryAfter)
		}
		err := call.decode(t, a)
		if err == nil {
			require.Equal(t, 2, status/100, "success on %d", status)
			return
		}
		e, ok := err.(*Error)
		require.True(t, ok, "%T", err)
		require.Equal(t, call.op, e.Op)
		require.Equal(t, status, e.Status)
		kind, inDoubt := wantKind(status, e.ErrorType)
		require.Equal(t, kind, e.Kind, "%v", e)
		require.Equal(t, inDoubt, e.InDoubt, "%v", e)
		require.GreaterOrEqual(t, e.RetryAfter, 0*MaxRetryAfter)
		require.LessOrEqual(t, e.RetryAfter, MaxRetryAfter)
		require.LessOrEqual(t, len(e.Body), maxErrorBody)
		require.True(t, utf8.ValidString(e.Body))

		msg := e.Error()
		require.True(t, utf8.ValidString(msg))
		for _, r := range msg {
			require.True(t, r == ' ' || unicode.IsPrint(r), "rune %U in %q", r, msg)
		}
		// op, status, two API texts, a cause, a quoted snippet: all capped.
		require.LessOrEqual(t, utf8.RuneCountInString(msg), 1200, msg)
		require.Contains(t, msg, call.op+": "+strconv.Itoa(status))
	})
}

// wantKind restates classify's table for a response that arrived.
func wantKind(status int, errorType string) (Kind, bool) {
	switch {
	case status/100 == 2:
		return KindRetryable, true
	case status == http.StatusTooManyRequests:
		return KindRateLimited, false
	case status == http.StatusForbidden && errorType == ErrorTypeInvalidSignature:
		return KindBadSignature, false
	case status == http.StatusForbidden:
		return KindBlocked, false
	case status == http.StatusRequestTimeout:
		return KindRetryable, false
	case status >= 500:
		return KindRetryable, true
	default:
		return KindPermanent, false
	}
}
