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
pending with their error cleared and their conversations are opened again:
a failed message holds the messages after it in its conversation (unless the
run was started with --on-failure continue), and retry sends it and then
them, in order. They are sent exactly as the run command sends, with the
same checkpoints, rate limit, signals and exit codes; whether a message is
loud is decided when it is sent (the newest message of its chat, if that is
not sent yet). Messages already sent are never sent again.

--msgid and --conversation pick some failed messages (repeatable); without
them, every failed message of the run. --skip gives the picked messages up
for good instead (they are never sent, report lists them as skipped) so
that the messages they hold go on without them: a message that will never
pass, accepted knowingly.

A retry that is interrupted resumes with the same command (or with run).
Rejected records are not retried: they never reached the database; fix them
in the source and import it as a new run.

Examples:
  kommo-import report --run my-import
  kommo-import retry --run my-import
  kommo-import retry --run my-import --msgid m-1041 --skip`

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
	var sel importer.Selection
	fs.Func("msgid", "retry (or with --skip, give up) only the failed message `MSGID` (repeatable)", func(v string) error {
		sel.MsgIDs = append(sel.MsgIDs, v)
		return nil
	})
	fs.Func("conversation", "retry (or skip) only the failed messages of conversation `ID` (repeatable)", func(v string) error {
		sel.Conversations = append(sel.Conversations, v)
		return nil
	})
	skip := fs.Bool("skip", false, "give the picked failed messages up for good: never sent, and no longer holding the rest of their conversations")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *run == "" {
		return withHint(ExitUsage, errors.New("retry: --run is required"), "kommo-import runs lists the runs")
	}
	if err := f.check(); err != nil {
		return err
	}
	if *skip && len(sel.MsgIDs) == 0 && len(sel.Conversations) == 0 {
		return withHint(ExitUsage, errors.New("retry --skip gives messages up for good: name them with --msgid or --conversation"),
			"kommo-import report --run "+shellQuote([]string{*run})+" lists the failed messages")
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
	keepRunSettings(&sess.cfg)
	kind, path := sourceKindPath(sess.cfg.Source.Label)
	if err := sf.media.check(kind, path, f.api.insecure); err != nil {
		return err
	}
	if err := sf.media.openMedia(ctx, &sess.cfg, kind, path, 0, false, f.api.insecure, sess.log); err != nil {
		return err
	}
	im, err := sess.newImporter()
	if err != nil {
		return err
	}
	if *skip {
		n, err := importer.SkipFailed(ctx, sess.pool, sess.cfg.Run, sel)
		if err != nil {
			return fmt.Errorf("retry: %w", err)
		}
		sess.log.Warn("failed messages given up for good: they will never be sent", "run", sess.cfg.Run, "messages", n)
	} else {
		n, err := importer.ResetFailed(ctx, sess.pool, sess.cfg.Run, sel)
		if err != nil {
			return fmt.Errorf("retry: %w", err)
		}
		sess.log.Info("failed messages set to be sent again", "run", sess.cfg.Run, "messages", n)
	}

	sum, runErr := sendRun(ctx, inv, sess, &sf, im)
	return finishSend(ctx, env, sess, sum, runErr, *jsonOut, true, subsetInfo{})
}
