package importer

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// RunCommand is the command line that started a run last, for status to
// print how to resume it (migrations/007).
type RunCommand struct {
	Run        string `json:"run"`
	ConfigFile string `json:"config_file,omitempty"` // absolute; "" without --config
	Resume     string `json:"resume"`                // the line to paste
	Workdir    string `json:"workdir"`               // where relative paths of Resume resolve
}

// SaveRunCommand records how to resume c.Run, replacing what an earlier
// start recorded.
func SaveRunCommand(ctx context.Context, pool *pgxpool.Pool, c RunCommand) error {
	err := store.New(pool).SaveRunCommand(ctx, c.Run, store.RunCommandRow{ConfigFile: c.ConfigFile, Resume: c.Resume, Workdir: c.Workdir})
	if err != nil {
		return fmt.Errorf("record the command of %s: %w", c.Run, err)
	}
	return nil
}

// RunCommandOf returns how to resume run; ok is false when no start of it
// recorded one (runs started by an older version).
func RunCommandOf(ctx context.Context, pool *pgxpool.Pool, run string) (c RunCommand, ok bool, err error) {
	c.Run = run
	row, err := store.New(pool).RunCommand(ctx, run)
	if isNoRows(err) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("the command of %s: %w", run, err)
	}
	c.ConfigFile, c.Resume, c.Workdir = row.ConfigFile, row.Resume, row.Workdir
	return c, true, nil
}
