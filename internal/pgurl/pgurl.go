// Package pgurl reads PostgreSQL connection strings without ever quoting
// them: a string may hold a password, and one that fails to parse has no
// reliable boundaries to cut the password out by. The importer's database
// and a postgres source's database are both parsed through it.
package pgurl

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Error is returned for a connection string that does not parse. Its
// message never quotes the string.
type Error struct {
	// URL: the string has the postgres:// (or postgresql://) form; otherwise
	// it was read as keyword=value settings.
	URL bool
	// Syntax: the string is not a URL (or not keyword=value settings) at
	// all, as opposed to a well-formed one with a bad setting.
	Syntax bool
}

func (e *Error) Error() string {
	switch {
	case e.URL && e.Syntax:
		return "cannot parse the PostgreSQL URL (its text is not shown: it may hold a password): it is not a valid URL"
	case e.URL:
		return "cannot parse the PostgreSQL URL (its text is not shown: it may hold a password): a setting in it is not valid (the port, sslmode or another parameter)"
	}
	return "cannot parse the PostgreSQL connection string (its text is not shown: it may hold a password): it is neither a postgres:// URL nor valid keyword=value settings"
}

// Parse parses s with parse (pgx.ParseConfig, pgxpool.ParseConfig) and
// replaces any error by an *Error built from the form of s alone. A URL
// whose userinfo is ambiguous is refused before pgx sees it: an unescaped
// "@", "/", "?" or "#" in a password makes pgx read a piece of the password
// as the host, port or database name, which would show in every message
// naming the server.
func Parse[T any](s string, parse func(string) (T, error)) (T, error) {
	var zero T
	if isURL(s) && !urlShapeOK(s) {
		return zero, &Error{URL: true, Syntax: true}
	}
	cfg, err := parse(s)
	if err != nil {
		return zero, classify(s)
	}
	return cfg, nil
}

// classify classifies a connection string pgx refused, by the form it has,
// without looking at pgx's message (which quotes the string).
func classify(s string) *Error {
	if !isURL(s) {
		return &Error{Syntax: true}
	}
	_, err := url.Parse(s)
	return &Error{URL: true, Syntax: err != nil}
}

// isURL says whether pgx reads s as a URL (the prefixes it recognizes).
func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

func urlShapeOK(s string) bool {
	_, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return strings.Count(rest[:end], "@") <= 1 && !strings.Contains(rest[end:], "@")
}

// Target names the server and database of a parsed configuration as a URL
// without a password: postgres://user@host:port/database. It is built from
// the parsed parts, never from the string they came from.
func Target(c *pgconn.Config) string {
	u := url.URL{Scheme: "postgres", Path: "/" + c.Database}
	if c.User != "" {
		u.User = url.User(c.User)
	}
	port := strconv.Itoa(int(c.Port))
	if strings.HasPrefix(c.Host, "/") { // a Unix socket directory
		u.RawQuery = url.Values{"host": {c.Host}, "port": {port}}.Encode()
	} else {
		u.Host = net.JoinHostPort(c.Host, port)
	}
	return u.String()
}
