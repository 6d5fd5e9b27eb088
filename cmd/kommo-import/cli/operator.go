package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kommo-import/kommo-import/importer"
)

// planFlags are run's flags for what a run tolerates and how it plans:
// --max-rejects and --older.
type planFlags struct {
	maxRejects int
	older      string
}

func (p *planFlags) register(fs *flag.FlagSet) {
	intVar(fs, &p.maxRejects, "max-rejects", 0, 0, 1_000_000_000,
		"allow `N` new rejected records before the run counts as incomplete (exit 3); records an earlier run of the scope\n"+
			"rejected too are known and never count")
	p.older = importer.OlderSend
	fs.Func("older", "messages older than what their chat already shows (a later export that backfills history): send (default:\n"+
		"counted, named in the log, and sent after the chat's newer ones, where Kommo shows them) or skip (given up, listed by report)",
		func(v string) error {
			switch v {
			case importer.OlderSend, importer.OlderSkip:
				p.older = v
				return nil
			}
			return fmt.Errorf("want send or skip, got %q", v)
		})
}

// config puts the flags in an importer configuration.
func (p *planFlags) config(cfg *importer.Config) {
	cfg.MaxRejects = int64(p.maxRejects)
	cfg.Older = p.older
}

// keepRunSettings makes a command that sends a run it did not start
// (retry, verify --repair) keep the run's own --max-rejects and --older.
func keepRunSettings(cfg *importer.Config) {
	cfg.MaxRejects = -1
	cfg.Older = ""
}

// rejectsText says what a run's rejects are: known from an earlier run of
// the scope, acknowledged, or new, and whether the new ones fail it.
func rejectsText(st *importer.RunStatus) string {
	known := count(st.RejectedKnown) + " known from earlier runs of the scope"
	var parts []string
	parts = append(parts, count(st.Rejected)+" = "+known, count(st.RejectedAcked)+" acknowledged", count(st.RejectedNew)+" new")
	s := strings.Join(parts, " + ")
	if len(st.RejectsKnownFrom) > 0 {
		s = strings.Replace(s, known, known+" ("+strings.Join(st.RejectsKnownFrom, ", ")+")", 1)
	}
	switch {
	case st.RejectedNew == 0:
	case st.RejectsFail():
		if st.MaxRejects > 0 {
			s += fmt.Sprintf(", more than --max-rejects %d", st.MaxRejects)
		}
		s += ": the run is incomplete (exit 3)"
	default:
		s += fmt.Sprintf(", within --max-rejects %d", st.MaxRejects)
	}
	return s
}

// noteRejects says, when a run ended well with rejects, why they did not
// fail it.
func noteRejects(log *slog.Logger, st *importer.RunStatus) {
	if st.Rejected == 0 {
		return
	}
	log.Warn("the run has rejected records that do not fail it: "+rejectsText(st), "run", st.Name,
		"report", "kommo-import report --run "+shellQuote([]string{st.Name}))
}

// runsAck is runs ack NAME.
func runsAck(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	name, pool, asJSON, err := openRunsAction(ctx, inv, "ack", args)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := importer.AckRejects(ctx, pool, name)
	if err != nil {
		return err
	}
	st, err := importer.Status(ctx, pool, name)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, struct {
			Run          string            `json:"run"`
			Acknowledged int64             `json:"acknowledged"`
			State        importer.RunState `json:"state"`
		}{name, n, st.State})
	}
	_, err = fmt.Fprintf(env.Stdout, "%s of run %s acknowledged: they no longer make it incomplete (state %s now)\n",
		nouns(n, "rejected record", "rejected records"), name, st.State)
	return err
}

// olderText says what a run found older than what its chats already show
// (a backfill), and what became of them.
func olderText(st *importer.RunStatus) string {
	what := "sent after the chats' newer messages: Kommo shows them at the end of those chats (--older skip gives them up)"
	if st.OlderMode == importer.OlderSkip {
		what = "given up (--older skip): report lists them"
	}
	return importer.OlderText(st.Older, st.OlderConversations) + "; " + what
}
