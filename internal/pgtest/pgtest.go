package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Prefix starts the name of every database this package creates.
const Prefix = "kt_"

// opTimeout bounds each CREATE/DROP DATABASE; a stuck server must fail the test, not hang the run.
const opTimeout = 30 * time.Second

const missingServer = `pgtest: no PostgreSQL server: neither TEST_DATABASE_URL nor DATABASE_URL is set.
Run the tests with "make test" (it starts a throwaway server from the machine's PostgreSQL binaries),
or wrap the command: scripts/with-pg.sh go test ./...,
or point TEST_DATABASE_URL at a server where you may create databases,
e.g. TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres`

// admin is the process-wide pool on the server URL that creates and drops test databases. It is
// never closed: it lives as long as the test binary.
var admin struct {
	mu   sync.Mutex
	url  string
	pool *pgxpool.Pool
}

// AdminURL returns the URL of the server the test databases live on: TEST_DATABASE_URL, else
// DATABASE_URL. With neither set the test fails with a message saying how to get a server.
func AdminURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	t.Fatal(missingServer)
	return ""
}

// URL returns the connection string of a fresh, empty database made for this test, dropped at
// cleanup. The server comes from TEST_DATABASE_URL, else DATABASE_URL; with neither set the test
// fails with a message that says to run `make test` (which starts a throwaway server) or to set
// TEST_DATABASE_URL.
func URL(t testing.TB) string {
	t.Helper()
	serverURL := AdminURL(t)
	pool, err := adminPool(serverURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := dbName(t.Name())
	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// template0 never has connections, so concurrent creates cannot trip over each other; the
	// explicit encoding keeps text behaviour the same whatever the server's default is.
	if _, err := pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("pgtest: create database %s on %s: %v", name, redact(serverURL), err)
	}
	t.Cleanup(func() {
		// The test's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		// FORCE ends connections a test left open (a leaked pool must not make cleanup fail).
		if _, err := pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

// Pool returns a pgxpool on a fresh database from URL(t), closed at cleanup before the database is
// dropped.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dbURL := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	// Registered after URL's cleanup, so it runs first: the pool closes, then the database drops.
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: ping %s: %v", redact(dbURL), err)
	}
	return pool
}

// adminPool returns the process-wide pool on serverURL, opening it on first use. A failed open is
// not cached, so one test's failure does not poison the rest with a stale error.
func adminPool(serverURL string) (*pgxpool.Pool, error) {
	admin.mu.Lock()
	defer admin.mu.Unlock()
	if admin.pool != nil && admin.url == serverURL {
		return admin.pool, nil
	}
	cfg, err := pgxpool.ParseConfig(serverURL)
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, fmt.Errorf("parse server URL %s: invalid connection string", redact(serverURL))
	}
	// Few connections: many test processes share one server with a limited max_connections.
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "pgtest"
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", redact(serverURL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect %s: %w", redact(serverURL), err)
	}
	if admin.pool != nil {
		admin.pool.Close()
	}
	admin.url, admin.pool = serverURL, pool
	return pool, nil
}

// maxIdent is PostgreSQL's identifier limit (NAMEDATALEN-1); longer names are silently truncated,
// which could make two tests share a database.
const maxIdent = 63

// dbName makes a database name from a test name: Prefix, the name lowered to [a-z0-9_], and a
// random suffix that keeps parallel processes and repeated runs apart.
func dbName(testName string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	suffix := "_" + hex.EncodeToString(b[:])

	var sb strings.Builder
	lastUnderscore := true // no leading underscore after the prefix
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
			lastUnderscore = false
		case !lastUnderscore:
			sb.WriteByte('_')
			lastUnderscore = true
		}
	}
	mid := strings.TrimRight(sb.String(), "_")
	if room := maxIdent - len(Prefix) - len(suffix); len(mid) > room {
		mid = strings.TrimRight(mid[:room], "_")
	}
	return Prefix + mid + suffix
}

// withDatabase returns serverURL pointed at database name, in either connection-string form.
func withDatabase(serverURL, name string) (string, error) {
	if strings.HasPrefix(serverURL, "postgres://") || strings.HasPrefix(serverURL, "postgresql://") {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", fmt.Errorf("parse server URL %s: invalid URL", redact(serverURL))
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// Keyword/value form: a later dbname overrides an earlier one. The name is [a-z0-9_] only, so
	// it needs no quoting.
	return strings.TrimSpace(serverURL) + " dbname=" + name, nil
}

// redact returns a URL fit for messages: the password replaced, keyword/value strings reduced to
// a placeholder since they may carry one anywhere.
func redact(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme == "" {
		return "[connection string]"
	}
	return u.Redacted()
}
