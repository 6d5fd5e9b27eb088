package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/sources"
)

const runHelp = `
Stage a source into PostgreSQL, plan it, and send every message to the Kommo
Chats API: in chronological order within each conversation, silent except one
loud message per conversation (see --notify), at most --rate requests per
second for all workers and processes of the scope together.

Every step is checkpointed. Run the same command again after any interruption
(Ctrl-C, kill, crash, network, API or database outage) and it resumes where it
stopped, sending nothing twice: a message whose request may have landed is
looked up in the chat's history before it is ever sent again. Several
processes may work the same run at once; they share its rate. Ctrl-C once
finishes the requests in flight; twice stops at once.

A source with no records at all ends with exit code 3 ("nothing was
imported"), since a failed export often leaves an empty file; give
--allow-empty when that is expected.

The channel secret is read from the environment (KOMMO_CHANNEL_SECRET) or from
--channel-secret-file, never from a flag value; it is never printed or stored.
The database URL and --source-dsn may hold passwords: they can come from the
environment (DATABASE_URL, KOMMO_SOURCE_DSN), and a command printed for you
names those variables instead of the values.

Examples:
  kommo-import run --source csv:export.csv --scope-id "$KOMMO_SCOPE_ID"
  kommo-import run --source jsonl:history.jsonl.gz --rate 6 --workers 16
  KOMMO_SOURCE_DSN=postgres://... kommo-import run --source postgres --source-table messages
  kommo-import run --source telegram:DataExport_2024-04-01 --users users.csv --media-missing text`

type runFlags struct {
	sessionFlags
	sendFlags
	source     sources.Spec
	users      userFlags
	contacts   contactsFlags // contacts.go
	plan       planFlags     // operator.go
	run        string
	notify     string
	batch      int
	allowEmpty bool
	jsonOut    bool
	dryRun     bool
}

func runRun(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "run", "--source SOURCE --scope-id ID [flags]", runHelp)
	var f runFlags
	f.send = &f.sendFlags
	registerSourceFlags(fs, &f.source)
	registerUserFlags(fs, &f.users, envKommoToken)
	f.contacts.register(fs, true)
	f.plan.register(fs)
	f.sessionFlags.register(fs, env)
	fs.StringVar(&f.run, "run", "", "the run's `NAME`; default: derived from the scope and the source, so the same command resumes")
	intVar(fs, &f.batch, "stage-batch", importer.DefaultBatchSize, 1, 1_000_000, "`N` records per staging transaction (the staging checkpoint)")
	fs.StringVar(&f.notify, "notify", string(importer.NotifyNewest), notifyHelp)
	fs.BoolVar(&f.allowEmpty, "allow-empty", false, "a source with no records is a success (exit 0), not a failed export (exit 3)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fs.BoolVar(&f.dryRun, "dry-run", false, "read the source and the database and say what the run would do (new, already sent, held by other runs,\n"+
		"taken over, older than their chat, loud messages, how long at --rate), sending and staging nothing; needs no channel secret")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if f.source.DSN == "" && f.source.Kind == sources.KindPostgres {
		f.source.DSN = env.Getenv(envSourceDSN)
	}
	// With a media store, local files stay files to put; without one they
	// go out as the text naming them.
	f.source.MediaHosted = f.media.enabled()
	t, err := f.target()
	if err != nil {
		return err
	}
	if err := f.media.check(f.source.Kind, f.source.Path, f.api.insecure); err != nil {
		return err
	}
	if f.dryRun {
		return runDryRun(ctx, inv, &f, t)
	}
	inv.setResume(fs, args, t.Run)
	// --link-contacts: the flags checked and the map read before anything
	// is opened; the importer tries the token (it may search and link)
	// before it writes or sends anything.
	linking, err := f.contacts.config(env, f.users.KommoDomain, true)
	if err != nil {
		return err
	}
	if linking != nil {
		defer linking.API.CloseIdleConnections()
	}

	var opened atomic.Pointer[sources.Reader] // the source, when this invocation reads it
	sess, err := openSession(ctx, inv, &f.sessionFlags, func(ctx context.Context, _ *pgxpool.Pool) (runTarget, error) {
		users, err := loadUserMap(ctx, env, f.users)
		if err != nil {
			return t, err
		}
		spec := f.source
		spec.Users, spec.Stdin = users, env.Stdin
		t.Open = func(ctx context.Context) (importer.Source, error) {
			r, err := openSource(ctx, spec)
			if err == nil {
				opened.Store(r)
			}
			return r, err
		}
		return t, nil
	})
	if err != nil {
		return err
	}
	defer sess.close()
	sess.cfg.BatchSize = f.batch
	f.plan.config(&sess.cfg)
	if err := f.media.openMedia(ctx, &sess.cfg, f.source.Kind, f.source.Path, f.source.MediaMaxSize,
		f.source.MediaMissing == sources.MediaMissingText, f.api.insecure, sess.log); err != nil {
		return err
	}
	sess.cfg.Contacts = linking
	im, err := sess.newImporter()
	if err != nil {
		return err
	}
	saveRunCommand(ctx, inv, sess, fs, t.Run)
	sum, runErr := sendRun(ctx, inv, sess, &f.sendFlags, im)
	if name := im.RunName(); name != t.Run {
		inv.setResume(fs, args, name) // the name the importer settled on
		saveRunCommand(ctx, inv, sess, fs, name)
	}
	sub := subsetInfo{Subset: f.source.Filter.Describe(f.source.Location)}
	if r := opened.Load(); r != nil && sub.Subset != "" {
		n := r.Stats().Filtered
		sub.Filtered = &n
	}
	return finishSend(ctx, env, sess, sum, runErr, f.jsonOut, f.allowEmpty, sub)
}

// saveRunCommand records how to resume the run, for status; a failure is
// only logged: the run goes on without it.
func saveRunCommand(ctx context.Context, inv *invocation, sess *session, fs *flag.FlagSet, run string) {
	inv.mu.Lock()
	line := inv.facts.resume
	inv.mu.Unlock()
	c := importer.RunCommand{Run: run, Resume: line}
	if cfg := fs.Lookup(configFlag).Value.String(); cfg != "" {
		c.ConfigFile, _ = filepath.Abs(cfg)
	}
	c.Workdir, _ = os.Getwd()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := importer.SaveRunCommand(ctx, sess.pool, c); err != nil {
		sess.log.Warn("status will not print how to resume this run", "err", err)
	}
}

// target checks the flags that need no database and names the run.
func (f *runFlags) target() (runTarget, error) {
	var t runTarget
	if f.api.scopeID == "" {
		return t, withHint(ExitUsage, errors.New("no scope: set "+envScopeID+" or --scope-id"), "kommo-import connect prints the scope_id of a channel in an account")
	}
	if f.source.Kind == "" {
		return t, withHint(ExitUsage, errors.New("no source: give --source csv:FILE, jsonl:FILE, postgres or an export (telegram:PATH, ...)"), "kommo-import run --help describes the sources")
	}
	if err := f.sessionFlags.check(); err != nil {
		return t, err
	}
	if !importer.Notify(f.notify).Valid() {
		return t, usageError(fmt.Errorf("--notify must be newest, newest-incoming or none, not %q", f.notify))
	}
	if f.source.Kind == sources.KindPostgres && f.source.DSN == "" {
		return t, withHint(ExitUsage, errors.New("--source postgres needs the database to read: --source-dsn URL, or env "+envSourceDSN),
			"export "+envSourceDSN+"=postgres://USER:PASSWORD@HOST:5432/DATABASE keeps the password off the command line")
	}
	if f.source.Kind == sources.KindPostgres {
		// Parsed here so that a DSN that does not parse is said in our
		// words: the reader's error would quote it.
		if _, err := importer.ParseDatabaseURL(f.source.DSN); err != nil {
			return t, fmt.Errorf("--source-dsn: %w", err)
		}
	}
	if err := f.source.Check(); err != nil {
		return t, usageError(err)
	}
	if err := checkKind(f.source); err != nil {
		return t, err
	}
	id, err := f.source.Identity()
	if err != nil {
		return t, usageError(err)
	}
	t = runTarget{Run: f.run, ScopeID: f.api.scopeID, Source: id, Notify: importer.Notify(f.notify)}
	if t.Run == "" {
		if id.Stream {
			return t, withHint(ExitUsage, errors.New("reading from stdin needs --run NAME: a stream has no name to resume by"), "kommo-import run --run my-import --source jsonl:- ...")
		}
		t.Run, t.Derived = importer.DerivedRunName(f.api.scopeID, id), true
	}
	return t, nil
}

// sendRun runs im with progress output; the invocation's stopper turns
// signals into its soft and hard stops.
func sendRun(ctx context.Context, inv *invocation, sess *session, sf *sendFlags, im *importer.Importer) (*importer.Summary, error) {
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		switch {
		case sf.progress == "none":
			<-stopProgress
		case sess.bar:
			if sess.sinks.file != nil {
				// The terminal has the bar; the file gets the log lines.
				go logProgress(im.Progress, sess.sinks.fileL, sf.interval, stopProgress)
			}
			showBar(im.Progress, sess.sinks.guard, stopProgress)
		default:
			logProgress(im.Progress, sess.log, sf.interval, stopProgress)
		}
	}()
	sum, err := im.Run(ctx, inv.stop.soft)
	close(stopProgress)
	<-progressDone
	return sum, err
}

// finishSend prints the summary and says how the invocation ended: the
// importer's error as it is (resolveExitCode words it), or what the summary
// shows went wrong.
func finishSend(ctx context.Context, env Env, sess *session, sum *importer.Summary, runErr error, jsonOut, allowEmpty bool, sub subsetInfo) error {
	if sum != nil {
		var live map[string]bool
		if len(sum.OtherRuns) > 0 {
			live = liveRuns(ctx, sess.pool, sum.OtherRuns)
		}
		var text bytes.Buffer
		if err := printSummary(&text, sum, jsonOut, live, sub); err != nil {
			return err
		}
		// Written whatever becomes of stdout: a closed pipe must not
		// keep the summary from the log file.
		_, _ = env.Stdout.Write(text.Bytes())
		if jsonOut {
			text.Reset()
			_ = printSummary(&text, sum, false, live, sub)
		}
		sess.sinks.writeSummary(text.Bytes(), sum)
	}
	switch {
	case runErr != nil:
		return runErr
	case sum.Records+sum.Rejected+sum.Duplicates == 0 && !allowEmpty:
		return &emptySourceError{run: sum.Name, source: sourceName(sum.Source), subset: sub.Subset}
	case sum.Outcome == importer.OutcomeIncomplete:
		return &incompleteError{run: sum.Name, failed: sum.Failed, rejected: sum.RejectedNew, known: sum.Rejected - sum.RejectedNew}
	}
	noteRejects(sess.log, &sum.RunStatus)
	return nil
}

// sourceName is a run's source label as the operator gave it: the path of
// a file (the label is kind:path).
func sourceName(label string) string {
	label, _, _ = strings.Cut(label, " [only ") // a subset's description (sources.Spec.Identity)
	if kind, path, ok := strings.Cut(label, ":"); ok && (kind == sources.KindCSV || kind == sources.KindJSONL || sources.IsExportKind(kind)) {
		return path
	}
	return label
}
