package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
)

const verifyHelp = `
Read the chat history of a run's conversations back through the Chats API and
check each chat as Kommo holds it: every message the run recorded as sent is
there exactly once (its msgid comes back as message.client_id), none of them
comes after a newer message of its chat (one that arrived out of order: a
retry, a backfill; Kommo shows it where it arrived), and no message the run
holds as failed, pending or given up is there (sending those again would
duplicate them).

While a run sends, a message it is sending (in doubt), or recorded sent
within --reconcile-wait and not in history yet (the API processes messages
asynchronously), is reported as in flight: neither missing nor unexpected.

A message recorded sent longer ago than --reconcile-wait and absent from its
chat is missing: it is recorded as failed, with the reason, so that
kommo-import retry sends it again (--mark=false leaves it as it is). With
--repair, verify then sends them itself, as retry does. A missing message
cannot be put back before the newer ones its chat shows: it arrives after
them. Its conversation is not held: the messages after it were sent.

History requests take slots of the scope's one rate schedule, the one a run
sending to the scope uses too: while a run sends, verify's requests take
turns with it and the account never sees more than the rate, but the run
slows down by what verify reads; check a --sample then. Progress goes to
stderr as run's does. Every conversation checked is checkpointed: an
interrupted verify goes on where it stopped with --resume, and its report
covers what was checked before too.

Exits 0 when everything checked is there once and in order, 3 otherwise
(with --repair: 0 once the missing ones were sent and nothing else is wrong),
4 when interrupted.

Examples:
  kommo-import verify --run my-import
  kommo-import verify --run my-import --sample 200 --json
  kommo-import verify --run my-import --resume
  kommo-import verify --run my-import --repair`

func runVerify(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "verify", "--run NAME [--sample N] [--resume] [--repair] [flags]", verifyHelp)
	var f sessionFlags
	var sf sendFlags
	f.send = &sf
	f.register(fs, env)
	run := fs.String("run", "", "the run's `NAME` (kommo-import runs lists them); required")
	var sample int
	intVar(fs, &sample, "sample", 0, 0, 1_000_000_000, "check a random sample of `N` conversations; 0: all of them")
	resume := fs.Bool("resume", false, "go on with the run's interrupted verification: the conversations it checked are not read again")
	mark := fs.Bool("mark", true, "record messages found missing as failed, so that retry sends them (--mark=false: only report them)")
	repair := fs.Bool("repair", false, "then send the messages found missing again, as retry does (with the sending flags above)")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *run == "" {
		return withHint(ExitUsage, errors.New("verify: --run is required"), "kommo-import runs lists the runs")
	}
	if *repair && !*mark {
		return usageError(errors.New("verify --repair sends the messages it records as missing: it cannot go with --mark=false"))
	}
	if err := f.check(); err != nil {
		return err
	}
	inv.setResume(fs, args, *run)
	inv.set(func(fa *invocationFacts) {
		fa.sends = *repair // only --repair sends messages
		if !strings.Contains(" "+fa.resume+" ", " --resume ") {
			fa.resume += " --resume" // an interrupted verify goes on where it stopped
		}
	})
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

	v, err := importer.NewVerifier(ctx, sess.pool, sess.client, importer.VerifyConfig{
		Run: sess.cfg.Run, Sample: sample, Rate: f.api.rate, ReconcileWait: sf.reconcile, Resume: *resume, NoMark: !*mark,
		MaxAttempts: sf.maxAttempts, Logger: sess.log,
	})
	if err != nil {
		return err
	}
	// The first signal stops the verification (its checkpoint keeps what
	// was checked) and, with --repair, makes the sending stop softly.
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-inv.stop.soft:
			cancel()
		case <-vctx.Done():
		}
	}()
	rep, verr := showVerifyProgress(sess, &sf, v, func() (*importer.VerifyReport, error) { return v.Run(vctx) })
	if rep != nil {
		if err := writeVerify(env.Stdout, rep, *jsonOut); err != nil {
			return err
		}
	}
	if verr != nil {
		return verr
	}
	if !*repair || rep.Marked == 0 {
		if !rep.Clean() {
			return &verifyError{rep: rep, marked: *mark}
		}
		return nil
	}

	// --repair: the messages found missing go out again, as retry sends.
	keepRunSettings(&sess.cfg)
	im, err := sess.newImporter()
	if err != nil {
		return err
	}
	n, err := importer.RepairMissing(ctx, sess.pool, sess.cfg.Run)
	if err != nil {
		return fmt.Errorf("verify --repair: %w", err)
	}
	sess.log.Info("sending the messages verify found missing again", "run", sess.cfg.Run, "messages", n)
	sum, runErr := sendRun(ctx, inv, sess, &sf, im)
	if sum != nil && !*jsonOut {
		fmt.Fprintf(env.Stdout, "\nrepair: %s found missing sent again\n", nouns(sum.SentNow, "message", "messages"))
	}
	if err := finishSend(ctx, env, sess, sum, runErr, *jsonOut, true, subsetInfo{}); err != nil {
		return err
	}
	if rep.DuplicatedCount+rep.UnexpectedCount+rep.OutOfOrderCount > 0 {
		return &verifyError{rep: rep, marked: true, repaired: true}
	}
	return nil
}

// writeVerify prints the report, as text or JSON (an empty list is [] for
// scripts: jq '.missing | length', never null).
func writeVerify(w io.Writer, rep *importer.VerifyReport, asJSON bool) error {
	if !asJSON {
		return printVerify(w, rep)
	}
	for _, l := range []*[]importer.VerifyIssue{&rep.Missing, &rep.Duplicated, &rep.Unexpected, &rep.InFlight, &rep.OutOfOrder} {
		if *l == nil {
			*l = []importer.VerifyIssue{}
		}
	}
	return writeJSON(w, rep)
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
	resumed := ""
	if r.Resumed > 0 {
		resumed = fmt.Sprintf("; %s of them by the interrupted verify this one resumed", count(r.Resumed))
	}
	fmt.Fprintf(w, "  conversations:  %s checked (%s of %s with sent messages%s)\n", count(r.Conversations), scope, count(r.ConversationsTotal), resumed)
	fmt.Fprintf(w, "  sent messages:  %s checked, %s found once, %s missing, %s duplicated\n", count(r.Checked), count(r.Found), count(r.MissingCount), count(r.DuplicatedCount))
	fmt.Fprintf(w, "  out of order:   %s in %s (after a newer message of their chat: Kommo shows them where they arrived)\n",
		count(r.OutOfOrderCount), nouns(r.OutOfOrderChats, "chat", "chats"))
	fmt.Fprintf(w, "  unexpected:     %s (in the chat, but held as failed, pending or given up)\n", count(r.UnexpectedCount))
	if r.InFlightCount > 0 {
		fmt.Fprintf(w, "  in flight:      %s (being sent, or sent within the reconcile window: verify again later)\n", count(r.InFlightCount))
	}
	if r.Marked > 0 {
		fmt.Fprintf(w, "  marked failed:  %s found missing: kommo-import retry --run %s (or verify --repair) sends them again\n",
			count(r.Marked), shellQuote([]string{r.Run}))
	}
	fmt.Fprintf(w, "  HTTP requests:  %s in %.1fs\n", count(r.Requests), r.Elapsed)
	for _, l := range []struct {
		what string
		list []importer.VerifyIssue
	}{{"missing", r.Missing}, {"duplicated", r.Duplicated}, {"out of order", r.OutOfOrder}, {"unexpected", r.Unexpected}, {"in flight", r.InFlight}} {
		for _, i := range l.list {
			fmt.Fprintf(w, "%s\tmsgid %s\tconversation %s\tchat %s", l.what, i.MsgID, i.ConversationID, orDefault(i.ChatID, "(unknown)"))
			switch {
			case l.what == "duplicated":
				fmt.Fprintf(w, "\t%s", nouns(int64(i.Count), "copy", "copies"))
			case i.After != "":
				fmt.Fprintf(w, "\tafter %s", i.After)
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
