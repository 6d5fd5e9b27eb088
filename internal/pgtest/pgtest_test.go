package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// dbExists reports whether the server has a database named name.
func dbExists(t *testing.T, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.AdminURL(t))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	require.NoError(t, err)
	return exists
}

func currentDB(t *testing.T, url string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var name string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
	return name
}

func TestURLGivesIsolatedDatabases(t *testing.T) {
	t.Parallel()
	a, b := pgtest.URL(t), pgtest.URL(t)
	require.NotEqual(t, a, b)

	nameA, nameB := currentDB(t, a), currentDB(t, b)
	require.NotEqual(t, nameA, nameB)
	require.True(t, strings.HasPrefix(nameA, pgtest.Prefix), nameA)

	connA, err := pgx.Connect(t.Context(), a)
	require.NoError(t, err)
	defer connA.Close(context.Background())
	_, err = connA.Exec(t.Context(), "CREATE TABLE marker (id int); INSERT INTO marker VALUES (1)")
	require.NoError(t, err)

	connB, err := pgx.Connect(t.Context(), b)
	require.NoError(t, err)
	defer connB.Close(context.Background())
	var found *string
	require.NoError(t, connB.QueryRow(t.Context(), "SELECT to_regclass('marker')::text").Scan(&found))
	require.Nil(t, found, "table made in one test database is visible in another")
}

func TestURLDatabaseDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		url := pgtest.URL(t)
		name = currentDB(t, url)
		// A connection left open must not stop the drop.
		conn, err := pgx.Connect(t.Context(), url)
		require.NoError(t, err)
		_ = conn
		require.True(t, dbExists(t, name))
	})
	require.NotEmpty(t, name)
	require.False(t, dbExists(t, name), "database %s still exists after cleanup", name)
}

func TestPool(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		pool := pgtest.Pool(t)
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
		_, err := pool.Exec(t.Context(), "CREATE TABLE t (id int)")
		require.NoError(t, err)
	})
	require.False(t, dbExists(t, name), "database %s still exists after cleanup", name)
}

// Names longer than PostgreSQL's 63-byte identifier limit, or full of punctuation, must still give
// distinct valid databases.
func TestURLLongAndOddTestNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Very Long Sub-test Name/", 8)
	for _, name := range []string{long, long, "ÜnIcode ✓ ünd Spaces", "___", "'; DROP TABLE x; --"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := currentDB(t, pgtest.URL(t))
			require.LessOrEqual(t, len(db), 63)
			require.Regexp(t, `^kt_[a-z0-9_]*_[0-9a-f]{12}$`, db)
		})
	}
}

// BenchmarkURL measures what each database test pays for its own database. The drops run at
// cleanup, after timing stops.
func BenchmarkURL(b *testing.B) {
	for b.Loop() {
		_ = pgtest.URL(b)
	}
}
