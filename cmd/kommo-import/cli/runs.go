package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kommo-import/kommo-import/importer"
)

const statusHelp = `
Show what a run has done and what is left, read from the database: while the
run is going (from another terminal) or after it ended. Without --run, the
most recently started run.

It says whether a live process works the run (host, pid, since when) or not:
a run with work left and no live process is interrupted, and the same command
that started it resumes it. "last delivery" is when any process last
delivered a message of the run: a live run whose last delivery is long ago is
waiting (a 429 pause, the database, in-doubt messages being looked up).`

func runStatus(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "status", "[--run NAME] [--json]", statusHelp)
	var db dbFlags
	db.register(fs, env)
	run := fs.String("run", "", "run `NAME` (see kommo-import runs); default: the latest run")
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
	if err != nil {
		return err
	}
	rc, ok, err := importer.RunCommandOf(ctx, pool, name)
	if err != nil {
		return err
	}
	var resume *importer.RunCommand
	if ok {
		resume = &rc
	}
	if *asJSON {
		return writeJSON(env.Stdout, struct {
			*importer.RunStatus
			Command *importer.RunCommand `json:"command,omitempty"` // how to resume it
		}{st, resume})
	}
	if err := printStatus(env.Stdout, st, time.Now()); err != nil {
		return err
	}
	return printResume(env.Stdout, st, resume)
}

// printResume prints how to resume a run that has work left and no process:
// the command that started it last (with --config FILE when it had one),
// and where to run it when its line has relative paths from elsewhere.
func printResume(w io.Writer, st *importer.RunStatus, rc *importer.RunCommand) error {
	if rc == nil || st.Live || st.State != importer.RunInterrupted {
		return nil
	}
	// A config file's paths are absolute by then; a command line's may not be.
	where := ""
	if wd, err := os.Getwd(); err == nil && rc.ConfigFile == "" && rc.Workdir != "" && wd != rc.Workdir {
		where = " (in " + rc.Workdir + ", where it was started: paths on the line are relative to it)"
	}
	_, err := fmt.Fprintf(w, "resume with: %s%s\n", rc.Resume, where)
	return err
}

// printStatus prints a run's status for people.
func printStatus(out io.Writer, st *importer.RunStatus, now time.Time) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k string, format string, args ...any) {
		fmt.Fprintf(w, "%s\t%s\n", k, fmt.Sprintf(format, args...))
	}
	row("run", "%s", st.Name)
	row("state", "%s", stateText(st))
	row("processes", "%s", processesText(st, now))
	if st.ProgressAt.IsZero() {
		row("last delivery", "none yet")
	} else {
		row("last delivery", "%s (%s)", ago(st.ProgressAt, now), st.ProgressAt.Local().Format(time.RFC3339))
	}
	if why := stopText(st, now); why != "" {
		row("stopped because", "%s", why)
	}
	row("scope", "%s", st.ScopeID)
	row("source", "%s", st.Source)
	rate := fmt.Sprintf("%g req/s", st.Rate)
	if st.Rate < 0 {
		rate = "unlimited"
	}
	row("notify / rate", "%s / %s", st.Notify, rate)
	row("records", "%s valid in %s conversations, %s rejected, %s duplicates", count(st.Records), count(st.Conversations), count(st.Rejected), count(st.Duplicates))
	if st.Rejected > 0 {
		row("rejected", "%s", rejectsText(st))
	}
	for _, l := range skippedLines(st.Skipped, "") {
		row("not imported", "%s", l)
	}
	row("skipped", "%s already sent in the scope, %s held by other runs", count(st.KnownSent), count(st.KnownOther))
	if len(st.OtherRuns) > 0 {
		row("", "other runs holding them: %s", strings.Join(st.OtherRuns, ", "))
	}
	row("taken over", "%s from runs no process works any more", nouns(st.TakenOver, "message", "messages"))
	row("messages", "%s", breakdownText(st.Messages))
	if st.Older > 0 {
		row("older", "%s", olderText(st))
	}
	if st.HandedOver > 0 {
		row("handed over", "%s handed over to later runs of the scope, which send them (this run had stopped)", nouns(st.HandedOver, "message", "messages"))
	}
	row("reconciled", "%s (in-doubt messages found in history, not sent again)", count(st.Reconciled))
	row("parked", "%s waiting for a retry or for their in-doubt message to be looked up", nouns(st.Parked, "conversation", "conversations"))
	row("quotes dropped", "%s sent without the quoted message (not in the export)", nouns(st.QuotesDropped, "reply or forward", "replies or forwards"))
	for _, l := range mediaLines(st.Media, nil) {
		row("media", "%s", l)
	}
	if st.Contacts != nil {
		row("contacts", "%s", contactsText(st.Contacts, st.Name))
	}
	for _, l := range unknownFieldLines(st.UnknownFields) {
		row("unknown field", "%s", l)
	}
	if !st.PausedUntil.IsZero() {
		row("paused until", "%s (429: every request waits; %s left)", st.PausedUntil.Local().Format(time.RFC3339), st.PausedUntil.Sub(now).Round(time.Second))
	}
	row("started", "%s", st.CreatedAt.Local().Format(time.RFC3339))
	row("updated", "%s", st.UpdatedAt.Local().Format(time.RFC3339))
	if !st.FinishedAt.IsZero() {
		row("finished", "%s", st.FinishedAt.Local().Format(time.RFC3339))
	}
	if !st.AbandonedAt.IsZero() {
		row("abandoned", "%s", st.AbandonedAt.Local().Format(time.RFC3339))
	}
	return w.Flush()
}

// stateText is a run's state with what it means.
func stateText(st *importer.RunStatus) string {
	switch st.State {
	case importer.RunStaging:
		return "staging (a live process reads the source)"
	case importer.RunSending:
		return "sending"
	case importer.RunInterrupted:
		return "interrupted: work is left and no process works the run"
	case importer.RunDone:
		if st.HandedOver > 0 {
			return fmt.Sprintf("done: everything sent or handed over (%s handed over to later runs)", count(st.HandedOver))
		}
		return "done: everything sent"
	case importer.RunIncomplete:
		rejected := nouns(st.Rejected, "rejected record", "rejected records")
		if st.Rejected != st.RejectedNew {
			rejected = nouns(st.RejectedNew, "new rejected record", "new rejected records")
		}
		return fmt.Sprintf("incomplete: nothing left to send, but %s and %s (kommo-import report --run %s)",
			nouns(st.Failed, "failed message", "failed messages"), rejected, shellQuote([]string{st.Name}))
	case importer.RunAbandoned:
		return "abandoned: never resumed; its unsent messages go to the next run that stages them"
	}
	return string(st.State)
}

// processesText says which live processes work the run, or what to do when none does.
func processesText(st *importer.RunStatus, now time.Time) string {
	if !st.Live {
		if st.State == importer.RunInterrupted {
			return "no live process: run the same command to resume"
		}
		return "no live process"
	}
	if len(st.LiveProcesses) == 0 {
		return fmt.Sprintf("%d live", st.Processes)
	}
	parts := make([]string, len(st.LiveProcesses))
	for i, p := range st.LiveProcesses {
		parts[i] = fmt.Sprintf("%s pid %d since %s (heartbeat %s)", p.Host, p.PID, p.StartedAt.Local().Format(time.RFC3339), ago(p.HeartbeatAt, now))
	}
	return fmt.Sprintf("%d live: %s", len(parts), strings.Join(parts, "; "))
}

// ago says how long before now t was: "12s ago", "3m ago", "2h5m ago".
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return d.Round(time.Second).String() + " ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

const runsHelp = `
List every run in the database, newest first, with its state and whether a
live process works it.

  kommo-import runs abandon NAME   give a run up: it is never resumed, and its
                                   unsent messages go to the next run that
                                   stages them (an in-doubt one is looked up in
                                   its chat's history first)
  kommo-import runs delete NAME    remove a run that sent nothing (staged by
                                   mistake); a run that sent messages can only
                                   be abandoned: its rows keep a re-sync from
                                   sending them twice

Neither works while a live process works the run.

  kommo-import runs ack NAME       acknowledge a run's new rejected records:
                                   an operator has looked at them, and they
                                   no longer make the run incomplete (exit 3).
                                   Records an earlier run of the scope rejected
                                   too are known anyway and fail no later run.`

func runRuns(ctx context.Context, inv *invocation, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "list":
			args = args[1:]
		case "abandon", "delete":
			return runsChange(ctx, inv, args[0], args[1:])
		case "ack":
			return runsAck(ctx, inv, args[1:])
		default:
			msg := fmt.Sprintf("unknown runs command %q", args[0])
			if s := nearest(args[0], []string{"abandon", "ack", "delete", "list"}); s != "" {
				msg += ": did you mean " + s + "?"
			}
			return withHint(ExitUsage, errors.New(msg), "kommo-import runs --help")
		}
	}
	env := inv.env
	fs := newFlagSet(env, "runs", "[list | abandon NAME | delete NAME | ack NAME] [--json]", runsHelp)
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
	now := time.Now()
	w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	// The message columns add up: STAGED (with those taken over) is the sum
	// of the next seven.
	fmt.Fprintln(w, "RUN\tSTATE\tLIVE\tSTAGED\tSENT\tPENDING\tIN DOUBT\tHELD\tFAILED\tGIVEN UP\tHANDED OVER\tREJECTED\tLAST DELIVERY\tSTARTED\tSOURCE")
	for _, r := range runs {
		live := "no"
		if r.Live {
			live = fmt.Sprintf("yes (%d)", r.Processes)
		}
		last := "-"
		if !r.ProgressAt.IsZero() {
			last = ago(r.ProgressAt, now)
		}
		m := r.Messages
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.State, live,
			count(m.Total()), count(m.Sent), count(m.Pending), count(m.InDoubt), count(m.Held), count(m.Failed), count(m.GivenUp), count(m.HandedOver),
			count(r.Rejected), last, r.CreatedAt.Local().Format("2006-01-02 15:04"), r.Source)
	}
	return w.Flush()
}

// runsChangeResult is the --json output of runs abandon and runs delete.
type runsChangeResult struct {
	Run    string `json:"run"`
	Action string `json:"action"` // abandoned, already_abandoned, deleted
	// What the run held when it was changed.
	Sent     int64 `json:"sent"`
	Pending  int64 `json:"pending"`
	InDoubt  int64 `json:"in_doubt"`
	Failed   int64 `json:"failed"`
	Rejected int64 `json:"rejected"`
}

// runsChange is runs abandon NAME and runs delete NAME.
func runsChange(ctx context.Context, inv *invocation, action string, args []string) error {
	env := inv.env
	name, pool, asJSON, err := openRunsAction(ctx, inv, action, args)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := importer.Status(ctx, pool, name)
	if err != nil {
		return err
	}
	res := runsChangeResult{Run: name, Action: action + "d", Sent: st.Sent, Pending: st.Pending, InDoubt: st.Sending, Failed: st.Failed, Rejected: st.Rejected}
	var text string
	switch {
	case action == "abandon" && st.State == importer.RunAbandoned:
		res.Action = "already_abandoned"
		text = fmt.Sprintf("run %s was abandoned already, at %s: nothing changed", name, st.AbandonedAt.Local().Format(time.RFC3339))
	case action == "abandon":
		if err := importer.AbandonRun(ctx, pool, name); err != nil {
			return fmt.Errorf("runs abandon %s: %w", name, err)
		}
		text = fmt.Sprintf("run %s abandoned: it is never resumed. Its %s (%s pending, %s in doubt) go to the next run that stages them; an in-doubt one is looked up in its chat's history first",
			name, nouns(st.Pending+st.Sending, "unsent message", "unsent messages"), count(st.Pending), count(st.Sending))
	default:
		if err := importer.DeleteRun(ctx, pool, name); err != nil {
			return fmt.Errorf("runs delete %s: %w", name, err)
		}
		text = fmt.Sprintf("run %s deleted, with its %s and %s", name, nouns(st.Staged, "staged message", "staged messages"), nouns(st.Rejected, "rejected record", "rejected records"))
	}
	if *asJSON {
		return writeJSON(env.Stdout, res)
	}
	_, err = fmt.Fprintln(env.Stdout, text)
	return err
}

// openRunsAction parses the flags of `runs ACTION NAME [--json]` (with the
// database's) and opens the database: the run's name, the pool (the
// caller closes it) and whether --json was given.
func openRunsAction(ctx context.Context, inv *invocation, action string, args []string) (string, *pgxpool.Pool, *bool, error) {
	env := inv.env
	fs := newFlagSet(env, "runs "+action, "NAME [--json]", runsHelp)
	var db dbFlags
	db.register(fs, env)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	name, err := parseWithName(fs, env, args)
	if err != nil {
		return "", nil, nil, err
	}
	inv.set(func(f *invocationFacts) { f.run = name })
	pool, err := db.open(ctx, 2)
	if err != nil {
		return "", nil, nil, err
	}
	return name, pool, asJSON, nil
}

// parseWithName parses flags and exactly one positional argument, which
// may come before, between or after the flags.
func parseWithName(fs *flag.FlagSet, env Env, args []string) (string, error) {
	var names, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			names = append(names, a)
			continue
		}
		rest = append(rest, a)
		if name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "="); !hasValue {
			if f := fs.Lookup(name); f != nil && !isBoolFlag(f.Value) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		}
	}
	if err := parseFlags(fs, env, rest); err != nil {
		return "", err
	}
	if len(names) != 1 {
		return "", withHint(ExitUsage, fmt.Errorf("%s: give one run name, not %d", fs.Name(), len(names)), "kommo-import runs lists the runs")
	}
	return names[0], nil
}
