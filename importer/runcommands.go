package importer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RunCommand is the command line that started a run last, for status to
// print how to resume it (migrations/007).
type RunCommand struct {
	Run        string `json:"run"`
	ConfigFile string `json:"config_file,omitempty"` // absolute; "" without --config
	Resume     string `json:"resume"`                // the line to paste
	Workdir    string `json:"workdir"`               // where relative paths of Resume resolve
}

const upsertRunCommand = `
INSERT INTO kommo_import_run_commands (run_name, config_file, resume, workdir)
VALUES ($1, NULLIF($2, ''), $3, $4)
ON CONFLICT (run_name) DO UPDATE
SET config_file = EXCLUDED.config_file, resume = EXCLUDED.resume, workdir = EXCLUDED.workdir, updated_at = now()`

const selectRunCommand = `SELECT COALESCE(config_file, ''), resume, workdir FROM kommo_import_run_commands WHERE run_name = $1`

// SaveRunCommand records how to resume c.Run, replacing what an earlier
// start recorded.
func SaveRunCommand(ctx context.Context, pool *pgxpool.Pool, c RunCommand) error {
	if _, err := pool.Exec(ctx, upsertRunCommand, c.Run, c.ConfigFile, c.Resume, c.Workdir); err != nil {
		return fmt.Errorf("record the command of %s: %w", c.Run, err)
	}
	return nil
}

// RunCommandOf returns how to resume run; ok is false when no start of it
// recorded one (runs started by an older version).
func RunCommandOf(ctx context.Context, pool *pgxpool.Pool, run string) (c RunCommand, ok bool, err error) {
	c.Run = run
	err = pool.QueryRow(ctx, selectRunCommand, run).Scan(&c.ConfigFile, &c.Resume, &c.Workdir)
	if isNoRows(err) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("the command of %s: %w", run, err)
	}
	return c, true, nil
}
