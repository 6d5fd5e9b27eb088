package kommoapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// Error is the only error type the Client returns. It holds no token and no
// request header; Title and Detail come from the API's problem+json answer.
type Error struct {
	Op     string // "account", "users page 2"
	Status int    // HTTP status; 0 when no answer arrived
	Title  string // the answer's title, made printable
	Detail string // the answer's detail, made printable
	Err    error  // transport, decode or redirect cause, if any
}

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
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Unauthorized reports a refused token: 401, the token is wrong, expired or
// revoked.
func (e *Error) Unauthorized() bool { return e.Status == http.StatusUnauthorized }

// Forbidden reports a token without the right: 403, typically a user that
// is not an admin asking for the users list.
func (e *Error) Forbidden() bool { return e.Status == http.StatusForbidden }

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
