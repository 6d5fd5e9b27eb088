package importer

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A connection string may hold a password, and a string that fails to parse
// has no reliable boundaries to cut the password out by. So no message here
// is ever built from the string itself: a parse failure says what kind of
// string it was and what usually goes wrong, and everything else names the
// server by the parts a successful parse returned (Target).

// DatabaseURLError is returned for a connection string that does not parse.
// Its message never quotes the string.
type DatabaseURLError struct {
	// URL: the string has the postgres:// (or postgresql://) form; otherwise
	// it was read as keyword=value settings.
	URL bool
	// Syntax: the string is not a URL (or not keyword=value settings) at
	// all, as opposed to a well-formed one with a bad setting.
	Syntax bool
}

func (e *DatabaseURLError) Error() string {
	switch {
	case e.URL && e.Syntax:
		return "cannot parse the PostgreSQL URL (its text is not shown: it may hold a password): it is not a valid URL"
	case e.URL:
		return "cannot parse the PostgreSQL URL (its text is not shown: it may hold a password): a setting in it is not valid (the port, sslmode or another parameter)"
	}
	return "cannot parse the PostgreSQL connection string (its text is not shown: it may hold a password): it is neither a postgres:// URL nor valid keyword=value settings"
}

// ConnectError is returned when the database named by a connection string
// cannot be reached. Target names it without the password.
type ConnectError struct {
	Target string
	Err    error // pgconn's error, built from the parsed settings (never the password)
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Target, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// ParseDatabaseURL parses a PostgreSQL URL or keyword=value string into a
// pool configuration with the importer's session settings: an
// application_name that shows in pg_stat_activity and a statement timeout, so
// a stuck query cannot hang a run. Its error is a *DatabaseURLError.
func ParseDatabaseURL(databaseURL string) (*pgxpool.Config, error) {
	if isURL(databaseURL) && !urlShapeOK(databaseURL) {
		return nil, &DatabaseURLError{URL: true, Syntax: true}
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, parseError(databaseURL)
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "kommo-import"
	}
	if rp["statement_timeout"] == "" {
		rp["statement_timeout"] = "60000"
	}
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	return cfg, nil
}

// parseError classifies a connection string pgx refused, by the form it
// has, without looking at pgx's message (which quotes the string).
func parseError(s string) *DatabaseURLError {
	if !isURL(s) {
		return &DatabaseURLError{Syntax: true}
	}
	_, err := url.Parse(s)
	return &DatabaseURLError{URL: true, Syntax: err != nil}
}

// isURL says whether pgx reads s as a URL (the prefixes it recognizes).
func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// urlShapeOK says whether the userinfo of a URL is unambiguous: at most one
// "@", before the path, query and fragment. An unescaped "@", "/", "?" or "#"
// in a password breaks that, and pgx then reads a piece of the password as
// the host, port or database name, which would show in every message naming
// the server.
func urlShapeOK(s string) bool {
	_, rest, _ := strings.Cut(s, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return strings.Count(rest[:end], "@") <= 1 && !strings.Contains(rest[end:], "@")
}

// Connect opens a pool on databaseURL (ParseDatabaseURL) and checks that the
// server answers. A string that does not parse is a *DatabaseURLError, a
// server that cannot be reached a *ConnectError; neither quotes databaseURL.
func Connect(ctx context.Context, databaseURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := ParseDatabaseURL(databaseURL)
	if err != nil {
		return nil, err
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	target := Target(&cfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &ConnectError{Target: target, Err: err}
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, &ConnectError{Target: target, Err: err}
	}
	return pool, nil
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
