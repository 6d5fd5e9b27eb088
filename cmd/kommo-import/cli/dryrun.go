package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/importer"
)

// runDryRun is run --dry-run: it reads the source and the checkpoint
// database and prints what the run would do, without sending or staging
// anything durable (importer.DryRun) and without asking the API anything
// (so it needs no channel secret).
func runDryRun(ctx context.Context, inv *invocation, f *runFlags, t runTarget) error {
	env := inv.env
	log, sinks, err := f.logs.open(env.Stderr, false)
	if err != nil {
		return err
	}
	inv.setLogger(log, sinks)
	pool, err := f.db.open(ctx, 3)
	if err != nil {
		return err
	}
	defer pool.Close()
	users, err := loadUserMap(ctx, env, f.users)
	if err != nil {
		return err
	}
	spec := f.source
	spec.Users, spec.Stdin = users, env.Stdin
	name := t.Run
	if t.Derived {
		name = ""
	}
	cfg := importer.Config{Run: name, ScopeID: t.ScopeID, Source: t.Source, Notify: t.Notify, Rate: f.api.rate, Logger: log,
		BatchSize: f.batch,
		Open:      func(ctx context.Context) (importer.Source, error) { return openSource(ctx, spec) }}
	f.plan.config(&cfg)
	im, err := importer.New(pool, nil, cfg)
	if err != nil {
		return usageError(err)
	}
	rep, err := im.DryRun(ctx)
	if err != nil {
		return err
	}
	out := dryRunOutput{DryRunReport: rep, Subset: f.source.Filter.Describe(f.source.Location)}
	if f.contacts.link {
		out.Contacts = "with --link-contacts, kommo-import contacts plan (the same flags) gives the linking plan: which chats go on which contacts; a linked chat goes all silent, so the loud messages above are at most"
	}
	if f.jsonOut {
		return writeJSON(env.Stdout, out)
	}
	return printDryRun(env.Stdout, &out)
}

// dryRunOutput is what run --dry-run prints (--json: this object).
type dryRunOutput struct {
	*importer.DryRunReport
	Subset   string `json:"subset,omitempty"`   // the subset flags in words
	Contacts string `json:"contacts,omitempty"` // --link-contacts: where its plan is
}

func printDryRun(w io.Writer, o *dryRunOutput) error {
	r := o.DryRunReport
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "dry run of run %s (scope %s): nothing was sent, staged or changed\n", r.Run, r.ScopeID)
	p("source", "%s", r.Source)
	if o.Subset != "" {
		p("subset", "%s (%s outside it, skipped)", o.Subset, nouns(r.Filtered, "record", "records"))
	}
	rejected := count(r.Rejected) + " rejected"
	if r.Rejected > 0 {
		rejected += " (kommo-import validate lists them)"
	}
	p("records", "%s valid in %s, %s, %s repeated", count(r.Records), nouns(r.Conversations, "conversation", "conversations"), rejected, count(r.Duplicates))
	for i, l := range skippedLines(r.Skipped, "") {
		label := ""
		if i == 0 {
			label = "not imported:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	switch {
	case !r.Exists:
		p("the run", "new: this command starts it")
	case r.State == importer.RunDone || r.State == importer.RunIncomplete:
		p("the run", "exists and has finished (%s): this command sends nothing more", r.State)
	default:
		p("the run", "exists (%s): this command resumes it", r.State)
	}
	// One term a line; they add up to the records.
	p("messages", "%s in the source = %s new", count(r.Records), count(r.New))
	for _, l := range []string{
		count(r.AlreadySent) + " already sent (skipped)",
		count(r.Resumed) + " staged by this run, unsent (sent now)",
		count(r.Settled) + " failed or given up in this run (retry's)",
		count(r.Held) + " held by runs a process works (skipped: they send them)",
		count(r.TakeOver) + " to take over from runs no process works",
	} {
		fmt.Fprintf(w, "  %-20s + %s\n", "", l)
	}
	if len(r.HeldBy) > 0 {
		p("held by", "%s", strings.Join(r.HeldBy, ", "))
	}
	if len(r.TakenFrom) > 0 {
		p("taken over from", "%s", strings.Join(r.TakenFrom, ", "))
	}
	if r.InDoubt > 0 {
		p("in doubt", "%s (looked up in their chat's history before they are ever sent again)", count(r.InDoubt))
	}
	if r.Older > 0 {
		what := "sent after the chats' newer messages, where Kommo shows them (--older skip gives them up)"
		if r.OlderMode == importer.OlderSkip {
			what = "given up (--older skip), not sent"
		}
		p("older", "%s: %s", importer.OlderText(r.Older, r.OlderChats), what)
		named := make([]string, len(r.OlderChatsNamed))
		for i, c := range r.OlderChatsNamed {
			named[i] = fmt.Sprintf("%s (%d, newest shown %s)", c.ConversationID, c.Messages, c.Shown.Format("2006-01-02 15:04"))
		}
		if r.OlderChats > int64(len(named)) {
			named = append(named, "...")
		}
		fmt.Fprintf(w, "  %-20s %s\n", "", strings.Join(named, ", "))
	}
	loud := fmt.Sprintf("%s of them get a loud message (an incoming lead and a notification each)", count(r.LoudChats))
	if r.Notify == importer.NotifyNone {
		loud = "none gets a loud message (--notify none)"
	}
	p("to send", "%s in %s; %s", nouns(r.ToSend, "message", "messages"), nouns(r.ChatsToSend, "chat", "chats"), loud)
	if r.Seconds > 0 {
		p("estimated duration", "%s at %g requests/s: about %s (more with retries and look-ups)",
			nouns(r.Requests, "request", "requests"), r.Rate, roundDuration(time.Duration(r.Seconds*float64(time.Second))))
	} else {
		p("estimated duration", "%s at an unlimited rate: as fast as the API answers", nouns(r.Requests, "request", "requests"))
	}
	if o.Contacts != "" {
		p("contacts", "%s", o.Contacts)
	}
	return nil
}

// roundDuration rounds d for people: seconds under an hour, minutes above.
func roundDuration(d time.Duration) string {
	if d < time.Hour {
		return shortDuration(d.Round(time.Second))
	}
	return shortDuration(d.Round(time.Minute))
}
