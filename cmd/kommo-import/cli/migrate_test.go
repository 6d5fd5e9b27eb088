package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/migrations"
)

func TestMigrateDryRunThenApply(t *testing.T) {
	c := newCLIEnv(t)
	var wouldApply, applied strings.Builder
	for _, n := range migrations.Names() {
		wouldApply.WriteString("would apply " + n + "\n")
		applied.WriteString("applied " + n + "\n")
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "--dry-run"}, wouldApply.String()},
		{[]string{"migrate"}, applied.String()},
		{[]string{"migrate", "--dry-run"}, "schema is up to date\n"},
		{[]string{"migrate"}, "schema is up to date\n"},
	} {
		out, errOut, code := c.run(t, step.args...)
		require.Equal(t, ExitOK, code, errOut)
		require.Equal(t, step.want, out, "%v", step.args)
	}
}

// rowsOnlyURL creates a role that may read and write the rows of the tables
// that exist now, as an administrator grants it after migrate, and returns
// dbURL logged in as it. The role is dropped at cleanup.
func rowsOnlyURL(t *testing.T, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := importer.Connect(ctx, dbURL, 2)
	require.NoError(t, err)
	var b [6]byte
	_, _ = rand.Read(b[:])
	role, password := "kt_rows_"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])
	id := pgx.Identifier{role}.Sanitize()
	for _, sql := range []string{
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`, // PostgreSQL before 15 lets everyone create there
		`CREATE ROLE ` + id + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + id,
		`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ` + id,
	} {
		_, err := admin.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	t.Cleanup(func() {
		defer admin.Close()
		_, err := admin.Exec(context.Background(), `DROP OWNED BY `+id)
		require.NoError(t, err)
		_, err = admin.Exec(context.Background(), `DROP ROLE `+id)
		require.NoError(t, err)
	})
	if !strings.Contains(dbURL, "://") {
		return dbURL + " user=" + role + " password=" + password
	}
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(role, password)
	return u.String()
}

// TestCommandsAsRowsOnlyRole: once migrate has run, every command works as
// a role that may not change the schema (issue 10.11: each one used to run
// CREATE TABLE IF NOT EXISTS first, refused for such a role).
func TestCommandsAsRowsOnlyRole(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "migrate")
	require.Equal(t, ExitOK, code, errOut)
	admin := c.vars[envDatabaseURL]
	c.vars[envDatabaseURL] = rowsOnlyURL(t, admin)

	out, errOut, code := c.run(t, "run", "--run", "rows-only", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, "sent:                14 (14 now)")
	require.Len(t, c.sim.Ledger(), 14)
	for _, args := range [][]string{{"status", "--run", "rows-only"}, {"runs"}, {"report", "--run", "rows-only"}, {"migrate", "--dry-run"}} {
		_, errOut, code := c.run(t, args...)
		require.Equal(t, ExitOK, code, "%v: %s", args, errOut)
	}

	// A newer binary's migration the schema lacks (here: its record deleted,
	// so the newest file looks missing) stops every command with what to do.
	newest := migrations.Names()[len(migrations.Names())-1]
	pool, err := importer.Connect(context.Background(), admin, 2)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(context.Background(), `DELETE FROM kommo_import_schema_migrations WHERE name = $1`, newest)
	require.NoError(t, err)
	_, errOut, code = c.run(t, "runs")
	require.Equal(t, ExitFatal, code, errOut)
	require.Contains(t, errOut, "this binary needs "+strconv.Itoa(migrationVersion(newest))+": run kommo-import migrate as a role that may change the schema")
	out, errOut, code = c.run(t, "migrate", "--dry-run")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, "would apply "+newest+"\n", out)
}

// migrationVersion is the number a migration file name starts with.
func migrationVersion(name string) int {
	n, err := strconv.Atoi(name[:strings.IndexByte(name, '_')])
	if err != nil {
		panic(err)
	}
	return n
}
