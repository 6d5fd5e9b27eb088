package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/kommo-import/kommo-import/migrations"
)

func runMigrate(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	fs := newFlagSet(env, "migrate", "[--database-url URL]", `
Apply kommo-import's database schema and exit. Every other command applies it
on start as well (under an advisory lock), so this is only needed when the
schema must be in place before the first run, for instance with a database
user that runs can use but not change.`)
	var db dbFlags
	db.register(fs, env)
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	pool, err := db.connect(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(env.Stdout, "schema is up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(env.Stdout, "applied", name)
	}
	return nil
}
