package chatsapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// Kind is what the caller should do about an *Error.
type Kind int

// The kinds of failure. The zero value is KindPermanent, so an error nobody
// classified is never retried by accident.
const (
	// KindPermanent: the API refused the request (4xx other than 403/408/429,
	// or a 3xx) or the call's arguments are invalid; do not send it again
	// unchanged. Trouble reaching the API is never permanent.
	KindPermanent Kind = iota
	// KindRetryable: 5xx, timeouts, connection errors, unusable 2xx bodies,
	// or the caller's context ended; the same request may be sent again
	// (after a history lookup when InDoubt).
	KindRetryable
	// KindRateLimited: 429; wait RetryAfter before any further request.
	KindRateLimited
	// KindBadSignature: 403 ORIGIN_INVALID_SIGNATURE; the secret is wrong or
	// the local clock is off (compare ServerDate with the local clock).
	KindBadSignature
	// KindBlocked: any other 403, typically an account or IP block after
	// repeated rate-limit excess; stop everything.
	KindBlocked
)

var kindText = [...]string{
	KindPermanent:    "permanent",
	KindRetryable:    "retryable",
	KindRateLimited:  "rate limited",
	KindBadSignature: "bad signature",
	KindBlocked:      "blocked",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindText) {
		return kindText[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// ErrorTypeInvalidSignature is the error_type of a 403 for a bad X-Signature.
const ErrorTypeInvalidSignature = "ORIGIN_INVALID_SIGNATURE"

// ErrorTypeNotRegistered is the error_type of a 404 for an unknown channel or scope.
const ErrorTypeNotRegistered = "ORIGIN_NOT_REGISTERED"

// MaxRetryAfter caps Error.RetryAfter. Kommo asks for 300s; a server asking
// for more (or for an overflowing number) is not trusted to stall a run.
const MaxRetryAfter = time.Hour

// maxErrorBody caps Error.Body: enough for any JSON error, small enough for a report.
const maxErrorBody = 2 << 10

// Caps, in runes, on what Error() prints of text the server controls.
const (
	maxSnippet  = 120 // the body, when it is not a JSON error
	maxAPIText  = 200 // error_type and error_description
	maxCauseMsg = 300 // the cause's message (net/http quotes server bytes in some)
)

// Error is the only error type the Client returns. Error() never contains the
// secret or the request body; Body holds (a prefix of) the response only.
type Error struct {
	Op          string        // "send message", "create chat", "history", "connect"
	Status      int           // HTTP status; 0 when no response arrived
	ErrorType   string        // error_type (amojo) or title (main-API shape), made printable
	Description string        // error_description (amojo) or detail (main-API shape), made printable
	RetryAfter  time.Duration // Retry-After header (seconds or HTTP date), else JSON retry_after; at most MaxRetryAfter
	ServerDate  time.Time     // the response's Date header, zero when absent
	Body        string        // raw response body (valid UTF-8), at most 2 KiB; print Error(), not this
	Kind        Kind
	InDoubt     bool  // the API may have processed the request
	Err         error // transport, decode or context cause, if any
}

// Error is one line with no control characters, whatever the server sent:
// the status, the API's error_type and description when the body is a JSON
// error, else a short quoted snippet of the body (HTML block pages, proxies).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		apiText := e.ErrorType != "" || e.Description != ""
		switch {
		case apiText:
			if e.ErrorType != "" {
				b.WriteString(" " + printable(e.ErrorType, maxAPIText))
			}
			if e.Description != "" {
				b.WriteString(": " + printable(e.Description, maxAPIText))
			}
		case http.StatusText(e.Status) != "":
			b.WriteString(" " + http.StatusText(e.Status))
		}
		if e.Err != nil {
			b.WriteString(": " + printable(e.Err.Error(), maxCauseMsg))
		}
		if snippet := printable(e.Body, maxSnippet); !apiText && snippet != "" {
			b.WriteString(": body " + strconv.Quote(snippet))
		}
	} else if e.Err != nil {
		b.WriteString(printable(e.Err.Error(), maxCauseMsg))
	} else {
		b.WriteString(e.Kind.String())
	}
	if e.InDoubt {
		b.WriteString(" (in doubt)")
	}
	return b.String()
}

// Unwrap returns the transport, decode or context cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same request may be sent again later:
// KindRetryable or KindRateLimited.
func (e *Error) Retryable() bool { return e.Kind == KindRetryable || e.Kind == KindRateLimited }

// Temporary is Retryable, for code that looks for the net.Error-style method.
func (e *Error) Temporary() bool { return e.Retryable() }

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// attempt is everything known about one HTTP attempt that did not succeed.
type attempt struct {
	op        string
	status    int // 0 when no response headers arrived
	header    http.Header
	body      []byte // as read, at most the client's MaxResponseBytes
	err       error  // transport or body-read error
	decodeErr error  // a 2xx body that cannot be used (oversized, undecodable, incomplete)
	wrote     bool   // httptrace WroteRequest saw the whole request written
	parentErr error  // the caller's ctx.Err() when the attempt ended
	now       time.Time
}

// classify is the one place that decides what a failed attempt means for the
// caller: its Kind, and whether the API may have acted on it (InDoubt).
func classify(a attempt) *Error {
	e := &Error{Op: a.op, Status: a.status, Err: a.err}
	if a.header != nil {
		if d, err := http.ParseTime(a.header.Get("Date")); err == nil {
			e.ServerDate = d
		}
	}
	e.Body = capBody(a.body)
	apiErr := parseAPIError(a.body)
	e.ErrorType, e.Description = apiErr.errorType, apiErr.description
	e.RetryAfter = apiErr.retryAfter
	if a.header != nil {
		if d, ok := parseRetryAfter(a.header.Get("Retry-After"), e.ServerDate, a.now); ok {
			e.RetryAfter = d // the header wins over the body
		}
	}

	switch {
	case a.parentErr != nil && (a.status == 0 || (a.err != nil && a.status/100 == 2)):
		// The caller gave up. The API never refused anything, so a later run
		// may send it again; whether it landed depends on what was written.
		e.Err = a.parentErr
		e.Kind = KindRetryable
		e.InDoubt = a.wrote
	case a.status == 0:
		// Connection errors, timeouts, and also certificate or DNS errors:
		// those are not about this request, so they must not mark it
		// refused; the caller's attempt budget stops a run that cannot connect.
		e.Kind = KindRetryable
		// A refused connection wrote nothing, whatever the trace said.
		e.InDoubt = a.wrote && !errors.Is(a.err, syscall.ECONNREFUSED)
	case a.status/100 == 2:
		// Kommo accepted something we cannot read: it may well have acted.
		if e.Err == nil {
			e.Err = a.decodeErr
		}
		e.Kind = KindRetryable
		e.InDoubt = true
	case a.status == http.StatusTooManyRequests:
		e.Kind = KindRateLimited
	case a.status == http.StatusForbidden:
		if apiErr.errorType == ErrorTypeInvalidSignature {
			e.Kind = KindBadSignature
		} else {
			e.Kind = KindBlocked
		}
	case a.status == http.StatusRequestTimeout:
		// The server gave up reading the request: nothing was processed.
		e.Kind = KindRetryable
	case a.status >= 500:
		e.Kind = KindRetryable
		e.InDoubt = true
	default:
		// Other 4xx, and 3xx (redirects are never followed: the signature
		// covers the path, and a POST must not be replayed elsewhere).
		e.Kind = KindPermanent
	}
	return e
}

type apiError struct {
	errorType, description string
	retryAfter             time.Duration
}

// parseAPIError reads the amojo error shape (error_type, error_description)
// and the main-API shape (title, detail, retry_after). Anything else, HTML
// included, yields the zero value.
func parseAPIError(body []byte) apiError {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return apiError{}
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			var s string
			if json.Unmarshal(m[k], &s) == nil && s != "" {
				return s
			}
		}
		return ""
	}
	a := apiError{
		errorType:   printable(str("error_type", "title"), maxAPIText),
		description: printable(str("error_description", "detail"), maxAPIText),
	}
	if raw, ok := m["retry_after"]; ok {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				n = json.Number(s)
			}
		}
		if f, err := n.Float64(); err == nil && f > 0 {
			// Compared as floats first: converting an out-of-range float
			// to Duration gives a negative wait.
			if f >= MaxRetryAfter.Seconds() {
				a.retryAfter = MaxRetryAfter
			} else {
				a.retryAfter = time.Duration(f * float64(time.Second))
			}
		}
	}
	return a
}

// parseRetryAfter reads a Retry-After header: delta seconds or an HTTP date.
// A date is measured from the server's own Date when it sent one, so a skewed
// local clock does not distort the wait.
func parseRetryAfter(v string, serverDate, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	from := now
	if !serverDate.IsZero() {
		from = serverDate
	}
	return min(max(at.Sub(from), 0), MaxRetryAfter), true
}

// printable makes server-controlled text safe for one line of a log or a
// terminal: invalid UTF-8 becomes U+FFFD, each run of white space one space,
// other runes that are not printable (control characters, escape sequences'
// ESC, bidi overrides) U+FFFD; at most max runes, then "…".
func printable(s string, max int) string {
	var b strings.Builder
	n, space := 0, false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = n > 0
			continue
		}
		if !unicode.IsPrint(r) {
			r = utf8.RuneError
		}
		need := 1
		if space {
			need = 2
		}
		if n+need > max {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			n, space = n+1, false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func capBody(b []byte) string {
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
		// Do not end on half a rune (at most UTFMax-1 bytes of one).
		for i := 0; i < utf8.UTFMax-1 && len(b) > 0; i++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	// An invalid byte became a 3-byte U+FFFD: cut again, at a rune start.
	if len(s) > maxErrorBody {
		cut := maxErrorBody
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// errTooLarge reports a response body over the client's MaxResponseBytes.
type errTooLarge struct{ limit int64 }

func (e errTooLarge) Error() string {
	return fmt.Sprintf("response body over %d bytes", e.limit)
}
