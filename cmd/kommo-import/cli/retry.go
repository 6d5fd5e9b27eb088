package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/sources"
)

const retryHelp = `
Send a run's failed messages again, once their cause is fixed (see
kommo-import report). In one transaction the failed messages go back to
pending with their error cleared, the silent rule of the plan is applied to
their conversations again (the loud message of a conversation is loud again
only if it is not sent yet; every other one stays silent), and their
conversations are opened again; then they are sent exactly as the run command
sends, with the same checkpoints, rate limit, signals and exit codes. Messages
already sent are never sent again.

A retry that is interrupted resumes with the same command (or with run).
Rejected records are not retried: they never reached the database; fix them
in the source and import it as a new run.

Example:
  kommo-import report --run my-import
  kommo-import retry --run my-import`

// targetOf is the run a retry or verify works, as the database has it.
func targetOf(st *importer.RunStatus) runTarget {
	return runTarget{Run: st.Name, ScopeID: st.ScopeID, Source: sources.Identity{Label: st.Source, Version: st.SourceVersion}, Notify: st.Notify}
}

func runRetry(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "retry", "--run NAME [flags]", retryHelp)
	var f sessionFlags
	var sf sendFlags
	f.send = &sf
	f.register(fs, env)
	run := fs.String("run", "", "the run's `NAME` (kommo-import runs lists them); required")
	jsonOut := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *run == "" {
		return withHint(ExitUsage, errors.New("retry: --run is required"), "kommo-import runs lists the runs")
	}
	if err := f.check(); err != nil {
		return err
	}
	inv.setResume(fs, args, *run)

	sess, err := openSession(ctx, inv, &f, func(ctx context.Context, pool *pgxpool.Pool) (runTarget, error) {
		st, err := importer.Status(ctx, pool, *run)
		if err != nil {
			return runTarget{}, err
		}
		if !st.StagingDone || st.State == importer.RunStaging {
			return runTarget{}, withHint(ExitUsage, fmt.Errorf("retry: run %s has not finished staging: it has nothing to retry yet", st.Name),
				"resume it with kommo-import run --run "+shellQuote([]string{st.Name})+" --source ...")
		}
		return targetOf(st), nil
	})
	if err != nil {
		return err
	}
	defer sess.close()
	im, err := sess.newImporter()
	if err != nil {
		return err
	}
	n, err := importer.ResetFailed(ctx, sess.pool, sess.cfg.Run)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	sess.log.Info("failed messages set to be sent again", "run", sess.cfg.Run, "messages", n)

	sum, runErr := sendRun(ctx, inv, sess, &sf, im)
	return finishSend(ctx, env, sess, sum, runErr, *jsonOut, true, subsetInfo{})
}
