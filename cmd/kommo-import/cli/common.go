package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/migrations"
)

// Environment variables the importer reads.
const (
	envDatabaseURL   = "DATABASE_URL"
	envAPIURL        = "KOMMO_API_URL"
	envScopeID       = "KOMMO_SCOPE_ID"
	envChannelSecret = "KOMMO_CHANNEL_SECRET"
)

// dbFlags are the flags of every command that opens the database.
type dbFlags struct {
	url string
}

func (d *dbFlags) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&d.url, "database-url", env.Getenv(envDatabaseURL),
		"PostgreSQL URL for checkpoints (env "+envDatabaseURL+")")
}

// connect opens a pool on the database.
func (d *dbFlags) connect(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	if d.url == "" {
		return nil, withHint(ExitUsage, fmt.Errorf("no database: set %s or --database-url", envDatabaseURL),
			"export DATABASE_URL=postgres://user:password@localhost:5432/kommo_import (docker compose up -d db starts one)")
	}
	pool, err := importer.Connect(ctx, d.url, maxConns)
	if err != nil {
		return nil, withHint(ExitFatal, err, "check that PostgreSQL is running and that the URL (shown without its password) is right")
	}
	return pool, nil
}

// open connects and applies the embedded migrations (under an advisory lock,
// so concurrent processes are safe).
func (d *dbFlags) open(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := d.connect(ctx, maxConns)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// logFlags choose the log format of stderr.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format on stderr: text or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageError(fmt.Errorf("--log-level: %w", err))
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError(fmt.Errorf("--log-format must be text or json, not %q", l.format))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// shellQuote quotes args for a command line a user can paste.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@+%") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
