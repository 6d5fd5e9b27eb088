package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/kommo-import/kommo-import/importer"
)

func runStatus(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	fs := newFlagSet(env, "status", "[--run NAME] [--json]", `
Show what a run has done and what is left, read from the database: while the
run is going (from another terminal) or after it ended. Without --run, the
most recently started run.`)
	var db dbFlags
	db.register(fs, env)
	run := fs.String("run", "", "run name (see kommo-import runs); default: the latest run")
	asJSON := fs.Bool("json", false, "print JSON (for dashboards and scripts)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	pool, err := db.open(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	name := *run
	if name == "" {
		runs, err := importer.Runs(ctx, pool)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			return withHint(ExitUsage, errors.New("no runs in this database yet"), "kommo-import run --help")
		}
		name = runs[0].Name
	}
	st, err := importer.Status(ctx, pool, name)
	if errors.Is(err, importer.ErrNoRun) {
		return withHint(ExitUsage, err, "kommo-import runs lists the runs")
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, st)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	row := func(k string, v ...any) { fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprint(v...)) }
	row("run", st.Name)
	row("state", st.State)
	row("scope", st.ScopeID)
	row("source", st.Source)
	row("notify / rate", fmt.Sprintf("%s / %g req/s", st.Notify, st.Rate))
	row("records", fmt.Sprintf("%d valid, %d rejected, %d duplicates", st.Records, st.Rejected, st.Duplicates))
	row("skipped", fmt.Sprintf("%d already sent in the scope, %d held by other runs", st.KnownSent, st.KnownOther))
	row("messages", fmt.Sprintf("%d staged: %d sent, %d pending, %d in doubt, %d failed", st.Staged, st.Sent, st.Pending, st.Sending, st.Failed))
	row("reconciled", st.Reconciled)
	row("processes", st.Processes)
	if !st.PausedUntil.IsZero() {
		row("paused until", st.PausedUntil.Local().Format(time.RFC3339))
	}
	row("started", st.CreatedAt.Local().Format(time.RFC3339))
	row("updated", st.UpdatedAt.Local().Format(time.RFC3339))
	if !st.FinishedAt.IsZero() {
		row("finished", st.FinishedAt.Local().Format(time.RFC3339))
	}
	return w.Flush()
}

func runRuns(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	fs := newFlagSet(env, "runs", "[--json]", `List every run in the database, newest first.`)
	var db dbFlags
	db.register(fs, env)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	pool, err := db.open(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	runs, err := importer.Runs(ctx, pool)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, runs)
	}
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RUN\tSTATE\tSENT\tPENDING\tFAILED\tREJECTED\tSTARTED\tSOURCE")
	for _, r := range runs {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Name, r.State, r.Sent, r.Pending+r.Sending, r.Failed, r.Rejected,
			r.CreatedAt.Local().Format("2006-01-02 15:04"), r.Source)
	}
	return w.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
