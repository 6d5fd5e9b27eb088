package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/kommo-import/kommo-import/migrations"
)

func runMigrate(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	fs := newFlagSet(env, "migrate", "[--database-url URL] [--dry-run]", `
Apply kommo-import's database schema and exit. Every other command checks the
schema on start and applies what is missing (under an advisory lock, so
processes starting at once are safe); on a current schema that check is one
SELECT and changes nothing. So the commands can run as a role that may only
read and write rows (SELECT, INSERT, UPDATE, DELETE on the tables, USAGE on
the sequences) once a role that may change the schema has run migrate; after
an upgrade that brings a new migration they say so, until migrate is run again.

--dry-run lists the migrations that would be applied and applies nothing.`)
	var db dbFlags
	db.register(fs, env)
	dryRun := fs.Bool("dry-run", false, "list the migrations the database lacks; apply nothing")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	pool, err := db.connect(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *dryRun {
		pending, err := migrations.Pending(ctx, pool)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			fmt.Fprintln(env.Stdout, "schema is up to date")
		}
		for _, name := range pending {
			fmt.Fprintln(env.Stdout, "would apply", name)
		}
		return nil
	}
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
