package importer

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Connect opens a pool on databaseURL with the importer's session settings:
// an application_name that shows in pg_stat_activity and a statement timeout
// so a stuck query cannot hang a run.
func Connect(ctx context.Context, databaseURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", redactErr(err, databaseURL))
	}
	rp := cfg.ConnConfig.RuntimeParams
	if rp["application_name"] == "" {
		rp["application_name"] = "kommo-import"
	}
	if rp["statement_timeout"] == "" {
		rp["statement_timeout"] = "60000"
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", RedactURL(databaseURL), redactErr(err, databaseURL))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s: %w", RedactURL(databaseURL), redactErr(err, databaseURL))
	}
	return pool, nil
}

// RedactURL returns a database URL with its password replaced by "xxxxx".
// Strings that are not URLs (key=value DSNs) have a password=... pair masked.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return redactDSN(s)
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func redactDSN(s string) string {
	out := []byte(s)
	const key = "password="
	for i := 0; i+len(key) <= len(out); i++ {
		if string(out[i:i+len(key)]) != key || (i > 0 && out[i-1] != ' ') {
			continue
		}
		j := i + len(key)
		k := j
		for k < len(out) && out[k] != ' ' {
			k++
		}
		out = append(out[:j], append([]byte("xxxxx"), out[k:]...)...)
	}
	return string(out)
}

// redactErr hides the URL's password if a parse error quotes the URL.
func redactErr(err error, raw string) error {
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return redactedError{err: err, secret: pw}
		}
	}
	return err
}

type redactedError struct {
	err    error
	secret string
}

func (e redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx") }
func (e redactedError) Unwrap() error { return e.err }
