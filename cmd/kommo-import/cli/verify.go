package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
)

const verifyHelp = `
Read the chat history of a run's conversations back through the Chats API and
check that every message the run recorded as sent is there exactly once (its
msgid comes back as message.client_id). It reports the msgids that are
missing, duplicated, or present although the run holds them as failed or
pending (sending those again would duplicate them), and the number of
requests made.

History requests take slots of the scope's one rate schedule, the one a run
sending to the scope uses too: while a run sends, verify's requests take
turns with it and the account never sees more than the rate, but the run
slows down by what verify reads; check a --sample then.

The API processes messages asynchronously: a message sent seconds ago may be
missing at first. Verify again a minute later before acting on it.

Exits 0 when everything checked is there once, 3 otherwise.

Examples:
  kommo-import verify --run my-import
  kommo-import verify --run my-import --sample 200 --json`

func runVerify(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "verify", "--run NAME [--sample N] [flags]", verifyHelp)
	var f sessionFlags
	f.register(fs, env)
	run := fs.String("run", "", "the run's `NAME` (kommo-import runs lists them); required")
	var sample int
	intVar(fs, &sample, "sample", 0, 0, 1_000_000_000, "check a random sample of `N` conversations; 0: all of them")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *run == "" {
		return withHint(ExitUsage, errors.New("verify: --run is required"), "kommo-import runs lists the runs")
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
		return targetOf(st), nil
	})
	if err != nil {
		return err
	}
	defer sess.close()

	rep, err := importer.VerifyWith(ctx, sess.pool, sess.client, importer.VerifyConfig{Run: sess.cfg.Run, Sample: sample, Rate: f.api.rate, Logger: sess.log})
	if err != nil {
		return err
	}
	if *jsonOut {
		// An empty list is [] for scripts (jq '.missing | length'), never null.
		for _, l := range []*[]importer.VerifyIssue{&rep.Missing, &rep.Duplicated, &rep.Unexpected} {
			if *l == nil {
				*l = []importer.VerifyIssue{}
			}
		}
		if err := writeJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else if err := printVerify(env.Stdout, rep); err != nil {
		return err
	}
	if !rep.Clean() {
		return &verifyError{rep: rep}
	}
	return nil
}

func printVerify(w io.Writer, r *importer.VerifyReport) error {
	verdict := "clean"
	if !r.Clean() {
		verdict = "NOT clean"
	}
	scope := "all"
	if r.Sample > 0 {
		scope = fmt.Sprintf("a sample of %d", r.Sample)
	}
	fmt.Fprintf(w, "verify run %s: %s\n", r.Run, verdict)
	fmt.Fprintf(w, "  conversations:  %s checked (%s of %s with sent messages)\n", count(r.Conversations), scope, count(r.ConversationsTotal))
	fmt.Fprintf(w, "  sent messages:  %s checked, %s found once, %s missing, %s duplicated\n", count(r.Checked), count(r.Found), count(r.MissingCount), count(r.DuplicatedCount))
	fmt.Fprintf(w, "  unexpected:     %s (in the chat, but held as failed or pending)\n", count(r.UnexpectedCount))
	fmt.Fprintf(w, "  HTTP requests:  %s in %.1fs\n", count(r.Requests), r.Elapsed)
	for _, l := range []struct {
		what string
		list []importer.VerifyIssue
	}{{"missing", r.Missing}, {"duplicated", r.Duplicated}, {"unexpected", r.Unexpected}} {
		for _, i := range l.list {
			fmt.Fprintf(w, "%s\tmsgid %s\tconversation %s\tchat %s", l.what, i.MsgID, i.ConversationID, orDefault(i.ChatID, "(unknown)"))
			switch {
			case l.what == "duplicated":
				fmt.Fprintf(w, "\t%s", nouns(int64(i.Count), "copy", "copies"))
			case i.State != "":
				fmt.Fprintf(w, "\tstate %s", i.State)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Truncated {
		fmt.Fprintf(w, "(lists cut at %d entries each; the counts above are complete)\n", importer.MaxVerifyIssues)
	}
	return nil
}
