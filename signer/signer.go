package signer

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// ContentType is the only content type the Chats API accepts.
const ContentType = "application/json"

// DateFormat is the RFC 2822 form the Kommo documentation shows
// ("Mon, 03 Oct 2020 15:11:21 +0000"). Sign always uses it; Verify also
// accepts the RFC 1123 "GMT" form that several public clients send.
const DateFormat = time.RFC1123Z

// MaxSkew is how far a request's Date may be from the receiver's clock, in
// either direction, before the signature is refused (the API documents 15
// minutes of validity from Date).
const MaxSkew = 15 * time.Minute

// Header names as they go on the wire.
const (
	HeaderDate        = "Date"
	HeaderContentType = "Content-Type"
	HeaderContentMD5  = "Content-Md5"
	HeaderSignature   = "X-Signature"
)

// Secret is a channel secret. Its String, GoString and LogValue methods print
// "[redacted]" so it cannot leak through fmt, %v or slog by accident; use
// Reveal where the raw value is really needed (the HMAC key).
type Secret string

// String returns "[redacted]".
func (Secret) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (Secret) GoString() string { return "[redacted]" }

// LogValue returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalText returns "[redacted]", so JSON and text encoders never write it.
func (Secret) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the raw secret.
func (s Secret) Reveal() string { return string(s) }

// Headers are the four signed headers of one request.
type Headers struct {
	Date        string
	ContentType string
	ContentMD5  string
	Signature   string
}

// Apply sets the headers on h, replacing any earlier values.
func (hs Headers) Apply(h http.Header) {
	h.Set(HeaderDate, hs.Date)
	h.Set(HeaderContentType, hs.ContentType)
	h.Set(HeaderContentMD5, hs.ContentMD5)
	h.Set(HeaderSignature, hs.Signature)
}

// BodyMD5 returns the lowercase hex MD5 of body (the MD5 of "" for nil).
func BodyMD5(body []byte) string {
	sum := md5.Sum(body)
	return hex.EncodeToString(sum[:])
}

// Sign returns the headers for a request with the given method, URL path
// (without scheme, host or query string), exact body bytes and time. The body
// sent must be exactly these bytes.
func Sign(method, path string, body []byte, secret Secret, t time.Time) Headers {
	return SignWithDate(method, path, body, secret, t.UTC().Format(DateFormat))
}

// SignWithDate is Sign with the Date header value given verbatim. It exists
// for test vectors and for clients that must send another date form.
func SignWithDate(method, path string, body []byte, secret Secret, date string) Headers {
	sum := BodyMD5(body)
	return Headers{
		Date:        date,
		ContentType: ContentType,
		ContentMD5:  sum,
		Signature:   signature(method, sum, ContentType, date, path, secret),
	}
}

func signature(method, contentMD5, contentType, date, path string, secret Secret) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(strings.ToUpper(method)))
	for _, s := range [...]string{contentMD5, contentType, date, path} {
		mac.Write([]byte{'\n'})
		mac.Write([]byte(s))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// Reason says why Verify refused a request.
type Reason int

// The reasons Verify refuses a request.
const (
	ReasonMissingHeader Reason = iota + 1
	ReasonContentType
	ReasonBodyMD5
	ReasonBadDate
	ReasonDateSkew
	ReasonSignature
)

var reasonText = map[Reason]string{
	ReasonMissingHeader: "missing header",
	ReasonContentType:   "unsupported content type",
	ReasonBodyMD5:       "Content-MD5 does not match the body",
	ReasonBadDate:       "unparseable Date",
	ReasonDateSkew:      "Date outside the validity window",
	ReasonSignature:     "X-Signature does not match",
}

func (r Reason) String() string {
	if s, ok := reasonText[r]; ok {
		return s
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// VerifyError is the error Verify returns. Detail never contains the secret.
type VerifyError struct {
	Reason Reason
	Detail string
}

func (e *VerifyError) Error() string {
	if e.Detail == "" {
		return "signature: " + e.Reason.String()
	}
	return "signature: " + e.Reason.String() + ": " + e.Detail
}

// Verify checks a received request the way the Chats API does: every signed
// header present, Content-Type application/json, Content-MD5 equal to the MD5
// of the exact body bytes, Date parseable and within MaxSkew of now, and
// X-Signature equal (constant-time) to the HMAC of the canonical string. It
// returns a *VerifyError naming the first failed check, or nil.
func Verify(method, path string, body []byte, h http.Header, secret Secret, now time.Time) error {
	date, ctype, sum, sig := h.Get(HeaderDate), h.Get(HeaderContentType), h.Get(HeaderContentMD5), h.Get(HeaderSignature)
	for _, hv := range [...]struct{ name, v string }{
		{HeaderDate, date}, {HeaderContentType, ctype}, {HeaderContentMD5, sum}, {HeaderSignature, sig},
	} {
		if hv.v == "" {
			return &VerifyError{Reason: ReasonMissingHeader, Detail: hv.name}
		}
	}
	if ctype != ContentType {
		return &VerifyError{Reason: ReasonContentType, Detail: fmt.Sprintf("%q", ctype)}
	}
	if !hmac.Equal([]byte(sum), []byte(BodyMD5(body))) {
		return &VerifyError{Reason: ReasonBodyMD5}
	}
	t, err := ParseDate(date)
	if err != nil {
		return &VerifyError{Reason: ReasonBadDate, Detail: fmt.Sprintf("%q", date)}
	}
	if skew := now.Sub(t); skew > MaxSkew || skew < -MaxSkew {
		return &VerifyError{Reason: ReasonDateSkew, Detail: fmt.Sprintf("Date %s is %s from the server clock %s",
			date, skew.Round(time.Second), now.UTC().Format(DateFormat))}
	}
	want := signature(method, sum, ctype, date, path, secret)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return &VerifyError{Reason: ReasonSignature}
	}
	return nil
}

// ParseDate parses a Date header in the RFC 2822 numeric-zone form or the
// RFC 1123 "GMT" form.
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC1123Z, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC1123, s)
}
