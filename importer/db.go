package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/internal/pgurl"
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
	if rp["application_name"] == "" {
		rp["application_name"] = "kommo-import"
	}
	if rp["statement_timeout"] == "" {
		rp["statement_timeout"] = "60000"
	}
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
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
