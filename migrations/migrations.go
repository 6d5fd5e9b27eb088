package migrations

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockKey is the pg_advisory_lock key that serialises migrations
// (the first 8 bytes of "kommoimp" as an integer).
const lockKey = 0x6b6f6d6d6f696d70

const createVersionTable = `
CREATE TABLE IF NOT EXISTS kommo_import_schema_migrations (
	name       text PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

const selectApplied = `SELECT name FROM kommo_import_schema_migrations`

const insertApplied = `INSERT INTO kommo_import_schema_migrations (name) VALUES ($1) ON CONFLICT DO NOTHING`

// SQLSTATEs Apply branches on.
const (
	undefinedTable        = "42P01"
	insufficientPrivilege = "42501"
	deadlockDetected      = "40P01"
	lockNotAvailable      = "55P03"
)

// Names returns the migration file names in the order they apply.
func Names() []string { return names(files) }

func names(fsys fs.FS) []string {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// version is the number a migration file name starts with ("002_runs.sql"
// is 2), or 0 if it starts with none.
func version(name string) int {
	digits := name[:len(name)-len(strings.TrimLeft(name, "0123456789"))]
	v, _ := strconv.Atoi(digits)
	return v
}

// VersionError is Apply's error when migrations are missing and the role
// Apply runs as may not apply them (permission denied): a role that may only
// read and write rows, after a newer binary brought migrations the schema
// does not have yet.
type VersionError struct {
	Have    int      // the number the newest applied migration's name starts with; 0: none
	Need    int      // the same for the newest migration this binary has
	Missing []string // the migrations not applied, in order
	Err     error    // the refused statement's error
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("schema is at version %d, this binary needs %d: run kommo-import migrate as a role that may change the schema (%s not applied: %v)",
		e.Have, e.Need, strings.Join(e.Missing, ", "), e.Err)
}

func (e *VersionError) Unwrap() error { return e.Err }

// querier is what applied reads through: a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// applied returns the names recorded in the version table, and whether the
// table exists. It only reads.
func applied(ctx context.Context, q querier) (map[string]bool, bool, error) {
	rows, err := q.Query(ctx, selectApplied)
	var list []string
	if err == nil {
		list, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == undefinedTable {
		return map[string]bool{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read applied migrations: %w", err)
	}
	done := make(map[string]bool, len(list))
	for _, n := range list {
		done[n] = true
	}
	return done, true, nil
}

// missing returns the names in all that done does not hold, in order.
func missing(all []string, done map[string]bool) []string {
	var out []string
	for _, n := range all {
		if !done[n] {
			out = append(out, n)
		}
	}
	return out
}

// Pending returns the embedded migrations the database has not applied, in
// the order they apply. It only reads (one SELECT; a database without the
// version table has every migration pending), so any role can call it.
func Pending(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	done, _, err := applied(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return missing(Names(), done), nil
}

// Apply applies every migration not yet applied and returns the names of
// those it applied, none when the schema was current. It first reads which
// are applied (a plain SELECT): when none is missing it changes nothing, takes
// no lock and needs no right but SELECT on the version table, so a role that
// may only read and write rows can run every command once an administrator
// has run migrate. Otherwise it takes a session advisory lock (several
// processes starting at once apply each migration once), and applies each
// missing one in its own transaction. When the role may not change the
// schema the error is a *VersionError.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	return apply(ctx, pool, files)
}

func apply(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) ([]string, error) {
	all := names(fsys)
	done, _, err := applied(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if len(missing(all, done)) == 0 {
		return nil, nil
	}

	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck // released with the session anyway

	// Read again under the lock: another process may have applied them
	// while this one waited.
	done, exists, err := applied(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	todo := missing(all, done)
	refused := func(err error) error {
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == insufficientPrivilege {
			have := 0
			for n := range done {
				have = max(have, version(n))
			}
			return &VersionError{Have: have, Need: version(all[len(all)-1]), Missing: todo, Err: err}
		}
		return nil
	}
	if !exists && len(todo) > 0 {
		if _, err := conn.Exec(ctx, createVersionTable); err != nil {
			if verr := refused(err); verr != nil {
				return nil, verr
			}
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	var out []string
	for _, name := range todo {
		sql, err := fs.ReadFile(fsys, name)
		if err != nil {
			return out, fmt.Errorf("migrate %s: %w", name, err)
		}
		err = applyOne(ctx, conn, name, string(sql))
		if err != nil {
			if verr := refused(err); verr != nil {
				return out, verr
			}
			return out, fmt.Errorf("migrate %s: %w", name, err)
		}
		out = append(out, name)
		done[name] = true
		todo = todo[1:] // what refused reports: the range above holds its own copy
	}
	return out, nil
}

// applyOne applies one migration in a transaction of its own. A deadlock or
// a lock wait cut short (a role's lock_timeout) with a session that reads
// the tables meanwhile (status, a process of an older binary) rolls it back
// whole, so it is tried again a few times before Apply gives up.
func applyOne(ctx context.Context, conn *pgxpool.Conn, name, sql string) error {
	const tries = 5
	for i := 1; ; i++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, insertApplied, name)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
			_, err = tx.Exec(ctx, sql)
			return err
		})
		pgErr, ok := errors.AsType[*pgconn.PgError](err)
		if !ok || (pgErr.Code != deadlockDetected && pgErr.Code != lockNotAvailable) || i == tries {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i) * 200 * time.Millisecond):
		}
	}
}
