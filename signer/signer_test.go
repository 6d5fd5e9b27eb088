package signer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/signer"
)

// vector is one entry of testdata/signature-vectors.json.
type vector struct {
	Name        string `json:"name"`
	Secret      string `json:"secret"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	ContentType string `json:"content_type"`
	Date        string `json:"date"`
	Body        string `json:"body"`
	ContentMD5  string `json:"content_md5"`
	XSignature  string `json:"x_signature"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/signature-vectors.json")
	require.NoError(t, err)
	var vs []vector
	require.NoError(t, json.Unmarshal(raw, &vs))
	require.NotEmpty(t, vs)
	return vs
}

func headersOf(hs signer.Headers) http.Header {
	h := http.Header{}
	hs.Apply(h)
	return h
}

func TestSignWithDateVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			require.Equal(t, signer.ContentType, v.ContentType)
			got := signer.SignWithDate(v.Method, v.Path, []byte(v.Body), signer.Secret(v.Secret), v.Date)
			require.Equal(t, signer.Headers{
				Date:        v.Date,
				ContentType: v.ContentType,
				ContentMD5:  v.ContentMD5,
				Signature:   v.XSignature,
			}, got)
			require.Equal(t, v.ContentMD5, signer.BodyMD5([]byte(v.Body)))
		})
	}
}

// TestSignVectors checks Sign on every vector whose Date is exactly what Sign
// would print for that instant. Vectors with a "GMT" zone or a wrong weekday
// (copied from the documentation) cannot come out of Sign, by design.
func TestSignVectors(t *testing.T) {
	var checked int
	for _, v := range loadVectors(t) {
		at, err := time.Parse(time.RFC1123Z, v.Date)
		if err != nil || at.UTC().Format(signer.DateFormat) != v.Date {
			continue
		}
		checked++
		t.Run(v.Name, func(t *testing.T) {
			// A non-UTC location must not change the Date: Sign converts to UTC.
			local := at.In(time.FixedZone("X", 5*3600+30*60))
			got := signer.Sign(v.Method, v.Path, []byte(v.Body), signer.Secret(v.Secret), local)
			require.Equal(t, v.Date, got.Date)
			require.Equal(t, v.ContentMD5, got.ContentMD5)
			require.Equal(t, v.XSignature, got.Signature)
			require.Equal(t, signer.ContentType, got.ContentType)
		})
	}
	// V2, V3, V5, the two 2023-11 vectors and "connect" qualify; guard against
	// the filter silently skipping everything.
	require.GreaterOrEqual(t, checked, 5)
}

func TestSignMethodCase(t *testing.T) {
	at := time.Date(2023, 1, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t,
		signer.Sign("POST", "/p", []byte("{}"), "s", at),
		signer.Sign("post", "/p", []byte("{}"), "s", at))
}

func TestVerifyAcceptsVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			now, err := signer.ParseDate(v.Date)
			require.NoError(t, err)
			h := http.Header{}
			h.Set("Date", v.Date)
			h.Set("Content-Type", v.ContentType)
			h.Set("Content-MD5", v.ContentMD5)
			h.Set("X-Signature", v.XSignature)
			require.NoError(t, signer.Verify(v.Method, v.Path, []byte(v.Body), h, signer.Secret(v.Secret), now))
			// Within the window on either side.
			require.NoError(t, signer.Verify(v.Method, v.Path, []byte(v.Body), h, signer.Secret(v.Secret), now.Add(signer.MaxSkew)))
			require.NoError(t, signer.Verify(v.Method, v.Path, []byte(v.Body), h, signer.Secret(v.Secret), now.Add(-signer.MaxSkew)))
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	const (
		secret = signer.Secret("5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189")
		method = "POST"
		path   = "/v2/origin/custom/scope"
	)
	body := []byte(`{"event_type":"new_message","payload":{"msgid":"m-1"}}`)
	now := time.Date(2023, 1, 1, 12, 0, 0, 0, time.UTC)

	tests := []struct {
		name   string
		edit   func(h http.Header, body []byte) []byte // returns the body the receiver sees
		secret signer.Secret
		method string
		path   string
		now    time.Time
		want   signer.Reason
	}{
		{name: "one body byte changed", edit: func(_ http.Header, b []byte) []byte {
			b = bytes.Clone(b)
			b[len(b)/2] ^= 0x01
			return b
		}, want: signer.ReasonBodyMD5},
		{name: "trailing newline added", edit: func(_ http.Header, b []byte) []byte {
			return append(bytes.Clone(b), '\n')
		}, want: signer.ReasonBodyMD5},
		{name: "wrong secret", secret: "0000000000000000000000000000000000000000", want: signer.ReasonSignature},
		{name: "other path", path: "/v2/origin/custom/other", want: signer.ReasonSignature},
		{name: "other method", method: "PUT", want: signer.ReasonSignature},
		{name: "Date 16 minutes old", now: now.Add(16 * time.Minute), want: signer.ReasonDateSkew},
		{name: "Date 16 minutes ahead", now: now.Add(-16 * time.Minute), want: signer.ReasonDateSkew},
		{name: "Date changed after signing", edit: func(h http.Header, b []byte) []byte {
			h.Set("Date", now.Add(time.Second).Format(signer.DateFormat))
			return b
		}, want: signer.ReasonSignature},
		{name: "Date unparseable", edit: func(h http.Header, b []byte) []byte {
			h.Set("Date", "2023-01-01T12:00:00Z")
			return b
		}, want: signer.ReasonBadDate},
		{name: "Date missing", edit: del("Date"), want: signer.ReasonMissingHeader},
		{name: "Content-Type missing", edit: del("Content-Type"), want: signer.ReasonMissingHeader},
		{name: "Content-MD5 missing", edit: del("Content-MD5"), want: signer.ReasonMissingHeader},
		{name: "X-Signature missing", edit: del("X-Signature"), want: signer.ReasonMissingHeader},
		{name: "wrong content type", edit: func(h http.Header, b []byte) []byte {
			h.Set("Content-Type", "text/plain")
			return b
		}, want: signer.ReasonContentType},
		{name: "content type with charset", edit: func(h http.Header, b []byte) []byte {
			h.Set("Content-Type", "application/json; charset=utf-8")
			return b
		}, want: signer.ReasonContentType},
		{name: "uppercase MD5", edit: func(h http.Header, b []byte) []byte {
			h.Set("Content-MD5", strings.ToUpper(h.Get("Content-MD5")))
			return b
		}, want: signer.ReasonBodyMD5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := headersOf(signer.Sign(method, path, body, secret, now))
			got := body
			if tt.edit != nil {
				got = tt.edit(h, body)
			}
			sec, m, p, n := secret, method, path, now
			if tt.secret != "" {
				sec = tt.secret
			}
			if tt.method != "" {
				m = tt.method
			}
			if tt.path != "" {
				p = tt.path
			}
			if !tt.now.IsZero() {
				n = tt.now
			}
			err := signer.Verify(m, p, got, h, sec, n)
			require.Error(t, err)
			var ve *signer.VerifyError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.want, ve.Reason, "error: %v", err)
			require.NotContains(t, err.Error(), string(secret))
			require.NotContains(t, err.Error(), string(sec))
		})
	}
}

func del(name string) func(http.Header, []byte) []byte {
	return func(h http.Header, b []byte) []byte {
		h.Del(name)
		return b
	}
}

func TestVerifyMissingHeaderNamesIt(t *testing.T) {
	now := time.Date(2023, 1, 1, 12, 0, 0, 0, time.UTC)
	h := headersOf(signer.Sign("GET", "/p", nil, "s", now))
	h.Del("X-Signature")
	err := signer.Verify("GET", "/p", nil, h, "s", now)
	var ve *signer.VerifyError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, signer.HeaderSignature, ve.Detail)
}

func TestReasonString(t *testing.T) {
	require.Equal(t, "Date outside the validity window", signer.ReasonDateSkew.String())
	require.Equal(t, "Reason(99)", signer.Reason(99).String())
}

func TestParseDate(t *testing.T) {
	want := time.Date(2023, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"Sun, 01 Jan 2023 12:00:00 +0000", "Sun, 01 Jan 2023 12:00:00 GMT", "Sun, 01 Jan 2023 15:00:00 +0300"} {
		got, err := signer.ParseDate(s)
		require.NoError(t, err, s)
		require.True(t, want.Equal(got), "%s → %s", s, got)
	}
	_, err := signer.ParseDate("yesterday")
	require.Error(t, err)
}

func TestSecretNeverPrints(t *testing.T) {
	const raw = "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189"
	s := signer.Secret(raw)
	type holder struct {
		Name   string
		Secret signer.Secret
		Ptr    *signer.Secret
	}
	h := holder{Name: "chan", Secret: s, Ptr: &s}

	var outputs []string
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(h))

	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("connect", "secret", s, "holder", h, slog.Any("any", s), slog.Group("g", "secret", s))
		log.With("secret", s).Info("with")
		outputs = append(outputs, buf.String())
	}

	js, err := json.Marshal(h)
	require.NoError(t, err)
	outputs = append(outputs, string(js))
	js, err = json.Marshal(map[string]any{"s": s})
	require.NoError(t, err)
	outputs = append(outputs, string(js))

	for _, out := range outputs {
		require.NotContains(t, out, raw)
		require.NotContains(t, out, fmt.Sprintf("%x", raw))
	}
	require.Contains(t, fmt.Sprintf("%v", h), "[redacted]")
	require.Equal(t, raw, s.Reveal())
}
