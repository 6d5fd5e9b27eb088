package sources

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// loadSQL runs a SQL file (several statements) in a fresh database and
// returns its URL.
func loadSQL(t *testing.T, path string) string {
	t.Helper()
	sql, err := os.ReadFile(path)
	require.NoError(t, err)
	dsn := pgtest.URL(t)
	execSQL(t, dsn, string(sql))
	return dsn
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// TestSameDataAllFormats feeds one logical data set through CSV, JSONL and
// PostgreSQL: every adapter must yield identical records, equal to the
// expected payloads.
func TestSameDataAllFormats(t *testing.T) {
	t.Parallel()
	want := wantSample(t)
	dsn := loadSQL(t, "../testdata/messages.sql")
	specs := map[string]Spec{
		"csv":            {Kind: KindCSV, Path: "../testdata/messages.csv"},
		"jsonl":          {Kind: KindJSONL, Path: "../testdata/messages.jsonl"},
		"postgres table": {Kind: KindPostgres, DSN: dsn, Table: "chat_export"},
		"postgres query": {Kind: KindPostgres, DSN: dsn, Query: "SELECT * FROM chat_export ORDER BY timestamp"},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			res := readAll(t, spec)
			require.Empty(t, res.errs)
			require.Equal(t, want, res.payloads())
			require.Equal(t, Stats{Records: int64(len(want)), Conversations: 3, BytesRead: res.stats.BytesRead}, res.stats)
		})
	}
}
