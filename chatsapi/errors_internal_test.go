package chatsapi

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	server := now.Add(-time.Hour) // a server clock an hour behind ours
	tests := []struct {
		name       string
		header     string
		serverDate time.Time
		want       time.Duration
		ok         bool
	}{
		{name: "empty"},
		{name: "seconds", header: " 30 ", want: 30 * time.Second, ok: true},
		{name: "zero", header: "0", ok: true},
		{name: "negative", header: "-5"},
		{name: "garbage", header: "soon"},
		{name: "seconds past the cap", header: "86400", want: MaxRetryAfter, ok: true},
		{name: "seconds overflowing Duration", header: "9223372036854775807", want: MaxRetryAfter, ok: true},
		{name: "seconds overflowing int64", header: "99999999999999999999"},
		{name: "date past the cap", header: now.AddDate(100, 0, 0).Format(http.TimeFormat), want: MaxRetryAfter, ok: true},
		{name: "date from local clock", header: now.Add(time.Minute).Format(http.TimeFormat), want: time.Minute, ok: true},
		{name: "date from server clock", header: server.Add(time.Minute).Format(http.TimeFormat), serverDate: server, want: time.Minute, ok: true},
		{name: "date in the past", header: now.Add(-time.Minute).Format(http.TimeFormat), ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.header, tt.serverDate, now)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseAPIError(t *testing.T) {
	tests := []struct {
		body string
		want apiError
	}{
		{`{"error_type":"A","error_description":"b","title":"T","detail":"D"}`, apiError{errorType: "A", description: "b"}},
		{`{"title":"T","detail":"D","retry_after":300}`, apiError{errorType: "T", description: "D", retryAfter: 300 * time.Second}},
		{`{"retry_after":"1.5"}`, apiError{retryAfter: 1500 * time.Millisecond}},
		{`{"retry_after":-1}`, apiError{}},
		{`{"retry_after":1e300}`, apiError{retryAfter: MaxRetryAfter}},
		{`{"retry_after":"+Inf"}`, apiError{retryAfter: MaxRetryAfter}},
		{`{"retry_after":"NaN"}`, apiError{}},
		{`{"error_type":"A\r\nB\u001b[0m","error_description":"` + strings.Repeat("x", 300) + `"}`,
			apiError{errorType: "A B\uFFFD[0m", description: strings.Repeat("x", maxAPIText) + "…"}},
		{`{"retry_after":null,"error_type":7,"error_description":{"x":1}}`, apiError{}},
		{`["not","an","object"]`, apiError{}},
		{`<html>`, apiError{}},
		{``, apiError{}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, parseAPIError([]byte(tt.body)), tt.body)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"", 10, ""},
		{"plain", 10, "plain"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven char", 10, "eleven cha…"},
		{"  lead\r\n\t and  trail \n", 20, "lead and trail"},
		{"a\x00b\x1b[0mc\x7fd\u0085e", 20, "a\uFFFDb\uFFFD[0mc\uFFFDd e"},
		{"bidi\u202eoverride\u200b", 20, "bidi\uFFFDoverride\uFFFD"},
		{"bad\xff\xfeutf8", 20, "bad\uFFFD\uFFFDutf8"},
		{"Привет, мир", 6, "Привет…"},
		{"ab cd", 3, "ab…"}, // the space would be the fourth rune
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, printable(tt.in, tt.max), "%q", tt.in)
	}
}

func TestCapBody(t *testing.T) {
	require.Equal(t, "", capBody(nil))
	require.Equal(t, "short", capBody([]byte("short")))
	// A multi-byte rune straddling the cap is dropped whole, not split.
	s := strings.Repeat("a", maxErrorBody-1) + "é" + "tail"
	got := capBody([]byte(s))
	require.True(t, utf8.ValidString(got))
	require.Equal(t, strings.Repeat("a", maxErrorBody-1), got)
	// Binary bodies stay printable and bounded.
	bin := capBody([]byte(strings.Repeat("\xff", 3*maxErrorBody)))
	require.True(t, utf8.ValidString(bin))
	require.LessOrEqual(t, len(bin), maxErrorBody, "U+FFFD is 3 bytes; the cap is in bytes")
	mixed := capBody([]byte(strings.Repeat("ab\xff", maxErrorBody)))
	require.True(t, utf8.ValidString(mixed))
	require.LessOrEqual(t, len(mixed), maxErrorBody)
	require.Greater(t, len(mixed), maxErrorBody-utf8.UTFMax)
}

func TestErrorString(t *testing.T) {
	require.Equal(t, "history: retryable", (&Error{Op: "history", Kind: KindRetryable}).Error())
	require.Equal(t, "connect: 599", (&Error{Op: "connect", Status: 599}).Error())
	require.Equal(t, "send message: 502 Bad Gateway: read response: unexpected EOF (in doubt)",
		(&Error{Op: "send message", Status: 502, Err: errString("read response: unexpected EOF"), InDoubt: true}).Error())
}

type errString string

func (e errString) Error() string { return string(e) }
