package kommoapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is the only error type the Client returns. It holds no token and no
// request header; Title and Detail come from the API's problem+json answer.
type Error struct {
	Op     string // "account", "users page 2", "link chats"
	Status int    // HTTP status; 0 when no answer arrived
	Title  string // the answer's title, made printable
	Detail string // the answer's detail, made printable
	// RetryAfter is a 429's wait (Retry-After, else retry_after), at most
	// MaxRetryAfter.
	RetryAfter time.Duration
	// InDoubt: a POST that may have been carried out although no usable
	// answer came (no answer, a 5xx, an answer that does not decode).
	// Creating again could make a second contact: look first.
	InDoubt bool
	// Invalid lists a 400's validation errors, by request_id.
	Invalid []FieldError
	Err     error // transport, decode or redirect cause, if any
}

// FieldError is one validation error of a batch item.
type FieldError struct {
	RequestID string // the item's request_id (its index when it had none)
	Path      string
	Detail    string
}

// MaxRetryAfter caps Error.RetryAfter: Kommo asks for 300 s; a server asking
// for more is not trusted to stall a run.
const MaxRetryAfter = time.Hour

// Error reads "kommo api: users page 2: 403 Forbidden: detail".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("kommo api: ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		b.WriteString(": " + strconv.Itoa(e.Status))
		switch {
		case e.Title != "":
			b.WriteString(" " + e.Title)
		case http.StatusText(e.Status) != "":
			b.WriteString(" " + http.StatusText(e.Status))
		}
		if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
	}
	for i, fe := range e.Invalid {
		if i == 3 {
			b.WriteString(fmt.Sprintf("; and %d more", len(e.Invalid)-i))
			break
		}
		b.WriteString("; item " + fe.RequestID + " " + fe.Path + ": " + fe.Detail)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.String() + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.InDoubt {
		b.WriteString(" (in doubt: it may have been carried out)")
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Unauthorized reports a refused token: 401, the token is wrong, expired or
// revoked.
func (e *Error) Unauthorized() bool { return e.Status == http.StatusUnauthorized }

// Forbidden reports a token without the right: 403, a user that is not an
// admin asking for the users list, or a token of another integration than
// the chat channel's own linking a chat (Reason says which).
func (e *Error) Forbidden() bool { return e.Status == http.StatusForbidden }

// RateLimited reports a 429: no request to the main API before RetryAfter.
func (e *Error) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// PaymentRequired reports a 402: the account's subscription has ended.
func (e *Error) PaymentRequired() bool { return e.Status == http.StatusPaymentRequired }

// Retryable reports whether the same request may be made again later: a 429
// (after RetryAfter), a 5xx, or no answer at all. A POST that is InDoubt is
// retryable only after looking whether it was carried out.
func (e *Error) Retryable() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status/100 == 5
}

// Linking reports whether the call was one of the chat-link calls, which
// need a token of the chat channel's own integration.
func (e *Error) Linking() bool { return e.Op == OpLinkChats || strings.HasPrefix(e.Op, OpChatLinks) }

// Reason says in a sentence why the API refused, for a status that has a
// known cause; "" otherwise.
func (e *Error) Reason() string {
	switch {
	case e.Unauthorized():
		return "the token was refused: it is wrong, expired or revoked"
	case e.Forbidden() && e.Linking():
		return "linking chats to contacts needs a long-lived token of an admin, issued by the integration whose uuid is set in the chat channel's settings (the channel's own integration); a token of any other integration is refused"
	case e.Forbidden():
		return "the token's user may not do this (listing users and linking chats need an admin), or the account or this IP is blocked"
	case e.PaymentRequired():
		return "the account is not paid: Kommo answers 402 when the subscription has ended"
	case e.RateLimited():
		return "too many requests to the main API (Kommo allows 7 a second per account and IP, shared with other integrations)"
	}
	return ""
}

// AsError returns the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// printable makes server text one short line.
func printable(s string) string {
	const max = 200
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "…"
	}
	return s
}
