package importer

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/internal/pgurl"
	"github.com/kommo-import/kommo-import/internal/tcpopt"
)

// DatabaseURLError is returned for a connection string that does not
// parse. Its message never quotes the string.
type DatabaseURLError = pgurl.Error

// ConnectError is returned when the database named by a connection string
// cannot be reached. Target names it without the password.
type ConnectError struct {
	Target string
	Err    error // pgconn's error, built from the parsed settings (never the password)
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Target, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// sessionSettings are set on every session the importer opens, unless the
// URL sets them. A process cut off from the database (its packets dropped,
// nothing closed) must count as gone within about a minute, not the two
// hours of the server's default keepalive: until then the server keeps its
// session, its advisory locks (the staging lock, its liveness lock) and its
// open transaction, and another process of the run waits on them. The
// server probes an idle session after 10 s, every 5 s, 4 times, and gives a
// connection up whose data goes unacknowledged for 30 s (PostgreSQL 12 and
// later). A stuck statement cannot hang a run (statement_timeout), and
// application_name shows in pg_stat_activity.
var sessionSettings = map[string]string{
	"application_name":        "kommo-import",
	"statement_timeout":       "60000",
	"tcp_keepalives_idle":     "10",
	"tcp_keepalives_interval": "5",
	"tcp_keepalives_count":    "4",
	"tcp_user_timeout":        "30000",
}

// ParseDatabaseURL parses a PostgreSQL URL or keyword=value string into a
// pool configuration with the importer's session settings: an
// application_name that shows in pg_stat_activity and a statement timeout, so
// a stuck query cannot hang a run. Its error is a *DatabaseURLError.
func ParseDatabaseURL(databaseURL string) (*pgxpool.Config, error) {
	cfg, err := pgurl.Parse(databaseURL, pgxpool.ParseConfig)
	if err != nil {
		return nil, err
	}
	rp := cfg.ConnConfig.RuntimeParams
	for k, v := range sessionSettings {
		if rp[k] == "" {
			rp[k] = v
		}
	}
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	// This side notices a dead server as soon as the server notices a dead
	// client: keepalive probes on an idle connection, and a connection whose
	// data goes unacknowledged for 30 s is given up.
	cfg.ConnConfig.DialFunc = tcpopt.Dialer(cfg.ConnConfig.ConnectTimeout, tcpopt.Options{UserTimeout: 30 * time.Second,
		KeepAlive: net.KeepAliveConfig{Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 4}}).DialContext
	return cfg, nil
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
// without a password: postgres://user@host:port/database.
func Target(c *pgconn.Config) string { return pgurl.Target(c) }
