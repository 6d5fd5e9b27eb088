package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// The tests hold for any number of embedded files: the ones that need more
// than there are add files of their own after them (extras).

func TestNames(t *testing.T) {
	names := Names()
	require.NotEmpty(t, names)
	require.Equal(t, "001_init.sql", names[0])
	prev := 0
	for _, n := range names {
		require.Regexp(t, regexp.MustCompile(`^[0-9]{3}_[a-z0-9_]+\.sql$`), n)
		require.Greater(t, version(n), prev, "%s: versions must increase by name", n)
		prev = version(n)
	}
}

// newPool opens a pool of its own on url, closed at cleanup.
func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// realFS is the embedded migrations, the first n of them when n >= 0.
func realFS(t *testing.T, n int) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	names := Names()
	if n >= 0 {
		names = names[:n]
	}
	for _, name := range names {
		b, err := files.ReadFile(name)
		require.NoError(t, err)
		m[name] = &fstest.MapFile{Data: b}
	}
	return m
}

// extras are migrations a later binary might bring, numbered after any the
// lead is likely to add.
var extras = map[string]string{
	"990_kt_extra_a.sql": `CREATE TABLE kt_extra_a (id bigint PRIMARY KEY)`,
	"991_kt_extra_b.sql": `ALTER TABLE kt_extra_a ADD COLUMN note text NOT NULL DEFAULT ''; CREATE INDEX ON kt_extra_a (note)`,
}

// withExtras is the embedded migrations followed by extras.
func withExtras(t *testing.T, extra map[string]string) fs.FS {
	t.Helper()
	m := realFS(t, -1)
	for name, sql := range extra {
		require.Greater(t, name, Names()[len(Names())-1], "extras must sort after the embedded files")
		m[name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return m
}

func extraNames() []string { return []string{"990_kt_extra_a.sql", "991_kt_extra_b.sql"} }

func recorded(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT name FROM kommo_import_schema_migrations ORDER BY name`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestApplyTwice(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	pending, err := Pending(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, Names(), pending, "an empty database has everything pending")

	applied, err := Apply(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, Names(), applied)
	applied, err = Apply(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, applied)
	pending, err = Pending(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, pending)
	require.Equal(t, Names(), recorded(t, pool))
}

// TestApplyConcurrently: processes starting at once on an empty database,
// each with its own pool, apply every migration exactly once between them.
func TestApplyConcurrently(t *testing.T) {
	for name, fsys := range map[string]func(*testing.T) fs.FS{
		"embedded":        func(t *testing.T) fs.FS { return realFS(t, -1) },
		"embedded+extras": func(t *testing.T) fs.FS { return withExtras(t, extras) },
	} {
		t.Run(name, func(t *testing.T) {
			url := pgtest.URL(t)
			fsys := fsys(t)
			const procs = 6
			pools := make([]*pgxpool.Pool, procs)
			for i := range pools {
				pools[i] = newPool(t, url)
				require.NoError(t, pools[i].Ping(context.Background()))
			}
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				mu    sync.Mutex
				count = map[string]int{}
				errs  []error
			)
			for _, pool := range pools {
				wg.Go(func() {
					<-start
					applied, err := apply(context.Background(), pool, fsys)
					mu.Lock()
					defer mu.Unlock()
					errs = append(errs, err)
					for _, n := range applied {
						count[n]++
					}
				})
			}
			close(start)
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			want := map[string]int{}
			for _, n := range names(fsys) {
				want[n] = 1
			}
			require.Equal(t, want, count, "each migration applied by exactly one process")
			require.Equal(t, names(fsys), recorded(t, pools[0]))
		})
	}
}

// TestApplyFromAnOlderVersion: a database an older binary migrated gets
// the later files, and only those.
func TestApplyFromAnOlderVersion(t *testing.T) {
	ctx := context.Background()

	t.Run("only 001_init.sql applied", func(t *testing.T) {
		pool := pgtest.Pool(t)
		applied, err := apply(ctx, pool, realFS(t, 1))
		require.NoError(t, err)
		require.Equal(t, []string{"001_init.sql"}, applied)
		pending, err := Pending(ctx, pool)
		require.NoError(t, err)
		later := append([]string(nil), Names()[1:]...) // nil while there is only 001
		require.Equal(t, later, pending)

		applied, err = Apply(ctx, pool)
		require.NoError(t, err)
		require.Equal(t, later, applied)
		require.Equal(t, Names(), recorded(t, pool))
	})

	t.Run("later files", func(t *testing.T) {
		pool := pgtest.Pool(t)
		_, err := Apply(ctx, pool)
		require.NoError(t, err)
		applied, err := apply(ctx, pool, withExtras(t, extras))
		require.NoError(t, err)
		require.Equal(t, extraNames(), applied)
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM kt_extra_a WHERE note = ''`).Scan(&n))
		require.Equal(t, append(Names(), extraNames()...), recorded(t, pool))
	})
}

// TestApplyFailedMigration: a migration that fails is not recorded and
// leaves nothing behind; the ones before it stay applied.
func TestApplyFailedMigration(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	bad := map[string]string{
		"990_kt_extra_a.sql": extras["990_kt_extra_a.sql"],
		"991_kt_bad.sql":     `CREATE TABLE kt_half (id int); SELECT * FROM kt_no_such_table`,
	}
	applied, err := apply(ctx, pool, withExtras(t, bad))
	require.ErrorContains(t, err, "migrate 991_kt_bad.sql: ")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "42P01", pgErr.Code)
	require.Equal(t, append(Names(), "990_kt_extra_a.sql"), applied)
	require.Equal(t, applied, recorded(t, pool))
	var half *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('kt_half')::text`).Scan(&half))
	require.Nil(t, half, "the failed file's transaction rolled back")
}

// TestApplyCurrentTakesNoLock: on a current schema Apply only reads, so a
// migration holding the lock elsewhere does not hold it up; with something
// missing it waits for the lock.
func TestApplyCurrentTakesNoLock(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	_, err := Apply(ctx, pool)
	require.NoError(t, err)

	holder, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey))
	require.NoError(t, err)

	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	applied, err := Apply(wait, pool)
	require.NoError(t, err, "a current schema needs no lock")
	require.Empty(t, applied)

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = apply(short, pool, withExtras(t, extras))
	require.ErrorContains(t, err, "migrate: lock: ")
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// dmlRole creates a role that may only read and write the rows of the
// tables that exist now (as an administrator grants it after migrate), and
// returns a pool logged in as it. The role is dropped at cleanup.
func dmlRole(t *testing.T, url string, admin *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	role, password := "kt_dml_"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])
	id := pgx.Identifier{role}.Sanitize()
	for _, sql := range []string{
		// PostgreSQL 15 no longer lets PUBLIC create in public; older servers still do.
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
		`CREATE ROLE ` + id + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + id,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + id,
	} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.ConnConfig.User, cfg.ConnConfig.Password = role, password
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Close()
		// Roles are the server's, not the database's: drop what it was granted here, then it.
		_, err := admin.Exec(context.Background(), `DROP OWNED BY `+id)
		require.NoError(t, err)
		_, err = admin.Exec(context.Background(), `DROP ROLE `+id)
		require.NoError(t, err)
	})
	return pool
}

// TestApplyAsRowsOnlyRole: after an administrator's migrate, a role that
// may only read and write rows runs what every command runs on start; when
// this binary has migrations the schema lacks, it says what to do.
func TestApplyAsRowsOnlyRole(t *testing.T) {
	ctx := context.Background()

	t.Run("schema current", func(t *testing.T) {
		url := pgtest.URL(t)
		admin := newPool(t, url)
		_, err := Apply(ctx, admin)
		require.NoError(t, err)
		dml := dmlRole(t, url, admin)

		applied, err := Apply(ctx, dml)
		require.NoError(t, err)
		require.Empty(t, applied)
		pending, err := Pending(ctx, dml)
		require.NoError(t, err)
		require.Empty(t, pending)
		// What it may do is enough for the importer's rows.
		_, err = dml.Exec(ctx, `INSERT INTO kommo_import_runs (name, scope_id, source, notify, rate) VALUES ('r', 's', 'csv:x', 'newest', 5)`)
		require.NoError(t, err)
	})

	t.Run("embedded migration missing", func(t *testing.T) {
		url := pgtest.URL(t)
		admin := newPool(t, url)
		all := Names()
		// An older binary's migrate: everything but the newest file.
		_, err := apply(ctx, admin, realFS(t, len(all)-1))
		require.NoError(t, err)
		dml := dmlRole(t, url, admin)
		before := 0
		if len(all) > 1 {
			before = version(all[len(all)-2])
		}

		_, err = Apply(ctx, dml)
		var verr *VersionError
		require.ErrorAs(t, err, &verr)
		require.Equal(t, before, verr.Have)
		require.Equal(t, version(all[len(all)-1]), verr.Need)
		require.Equal(t, all[len(all)-1:], verr.Missing)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "42501", pgErr.Code)
		require.ErrorContains(t, err, "run kommo-import migrate as a role that may change the schema")

		applied, err := Apply(ctx, admin)
		require.NoError(t, err)
		require.Equal(t, all[len(all)-1:], applied, "the refused attempt left nothing half done")
	})

	t.Run("later migrations missing", func(t *testing.T) {
		url := pgtest.URL(t)
		admin := newPool(t, url)
		_, err := Apply(ctx, admin)
		require.NoError(t, err)
		dml := dmlRole(t, url, admin)

		_, err = apply(ctx, dml, withExtras(t, extras))
		var verr *VersionError
		require.True(t, errors.As(err, &verr), "%v", err)
		require.Equal(t, VersionError{Have: version(Names()[len(Names())-1]), Need: 991, Missing: extraNames(), Err: verr.Err}, *verr)
		require.EqualError(t, err, "schema is at version "+strconv.Itoa(verr.Have)+", this binary needs 991: run kommo-import migrate as a role that may change the schema "+
			"(990_kt_extra_a.sql, 991_kt_extra_b.sql not applied: ERROR: permission denied for schema public (SQLSTATE 42501))")
		require.Equal(t, Names(), recorded(t, admin), "nothing recorded for what was refused")
	})
}

// TestApplyOutlivesADeadlock: a session reading the tables a migration
// alters, in the other order (a poller of status, as TestE2ECrashAndRestart
// has), deadlocks with it; PostgreSQL cancels the migration's transaction,
// and Apply tries it again instead of failing the command (seen: "migrate
// 003_fencing_hold_logged_pacer.sql: ERROR: deadlock detected").
func TestApplyOutlivesADeadlock(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	_, err := Apply(ctx, pool)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE TABLE kt_dl_a (id int); CREATE TABLE kt_dl_b (id int)`)
	require.NoError(t, err)
	// PostgreSQL looks for a deadlock once, deadlock_timeout after a wait
	// begins, and cancels the session that finds it. The migration must be
	// the one: its check comes 5 s after its wait begins (the reader's
	// wait begins well within that, even on a loaded machine: with the
	// default 1 s the reader came 1 s late once under make
	// test-under-load, the migration found nothing, and the reader was
	// cancelled), the reader's a minute after its own. (Setting
	// deadlock_timeout takes a superuser, as the throwaway cluster is.)
	var db string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db))
	_, err = pool.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` SET deadlock_timeout = '5s'`)
	require.NoError(t, err, "the test needs a superuser to set deadlock_timeout")
	pool.Reset() // new sessions take the setting

	reader, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer reader.Rollback(ctx) //nolint:errcheck // committed below
	_, err = reader.Exec(ctx, `SET LOCAL deadlock_timeout = '60s'`)
	require.NoError(t, err)
	_, err = reader.Exec(ctx, `SELECT * FROM kt_dl_b`)
	require.NoError(t, err)

	type result struct {
		applied []string
		err     error
	}
	fsys := withExtras(t, map[string]string{
		"992_kt_deadlock.sql": `ALTER TABLE kt_dl_a ADD COLUMN x int; ALTER TABLE kt_dl_b ADD COLUMN x int`,
	})
	done := make(chan result, 1)
	go func() {
		a, err := apply(ctx, pool, fsys)
		done <- result{a, err}
	}()
	// The migration holds kt_dl_a and waits for kt_dl_b; the reader now
	// reads kt_dl_a: a deadlock, which the migration (waiting longer)
	// finds and is cancelled for.
	require.Eventually(t, func() bool {
		var n int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'kt_dl_b'::regclass`).Scan(&n)
		return err == nil && n > 0
	}, 10*time.Second, 10*time.Millisecond, "the migration waits for kt_dl_b")
	_, err = reader.Exec(ctx, `SELECT * FROM kt_dl_a`)
	require.NoError(t, err, "the reader is not the one cancelled")
	require.NoError(t, reader.Commit(ctx))

	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, []string{"992_kt_deadlock.sql"}, r.applied)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_name IN ('kt_dl_a', 'kt_dl_b') AND column_name = 'x'`).Scan(&n))
	require.Equal(t, 2, n)
}
