package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"

	"github.com/kommo-import/kommo-import/importer"
)

// Exit codes. They are part of the interface: scripts and schedulers branch on them.
const (
	ExitOK          = 0
	ExitFatal       = 1
	ExitUsage       = 2
	ExitIncomplete  = 3 // finished with failed messages or rejected records, or the source was empty
	ExitInterrupted = 4 // stopped early; the same command resumes
	ExitOperator    = 5 // stopped until an operator acts (block, signature, clock, unknown scope)
	// ExitBrokenPipe: what read stdout went away ("kommo-import report |
	// head"). SIGPIPE is ignored (signals.go), so the process ends by itself,
	// quietly and with the status a shell gives a process SIGPIPE killed.
	ExitBrokenPipe = 128 + 13
)

// exitError is an error the command line itself found (a flag, a missing
// setting), with its exit code and what to try. Errors of the importer carry
// no such words: resolveExitCode gives them theirs.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errHelp is returned after --help was printed: exit 0, print nothing more.
var errHelp = errors.New("help printed")

func usageError(err error) error { return &exitError{code: ExitUsage, err: err} }

func withHint(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// errHardStop: the command had not returned hardStopGrace after the second
// signal, and the process ends without it.
var errHardStop = errors.New("stopped at once")

// incompleteError: a run (or report) ended with failed messages or rejected
// records: rejected counts the new ones (not known from an earlier run of
// the scope, not acknowledged), known the others.
type incompleteError struct {
	run              string
	failed, rejected int64
	known            int64
	listed           bool // by report: no need to say report lists them
}

func (e *incompleteError) Error() string {
	if e.known > 0 {
		return fmt.Sprintf("run %s has %s and %s (%s more known from earlier runs of the scope)", e.run, nouns(e.failed, "failed message", "failed messages"),
			nouns(e.rejected, "new rejected record", "new rejected records"), count(e.known))
	}
	return fmt.Sprintf("run %s has %s and %s", e.run, nouns(e.failed, "failed message", "failed messages"), nouns(e.rejected, "rejected record", "rejected records"))
}

// emptySourceError: the run's source held no records at all, or none in
// its subset.
type emptySourceError struct{ run, source, subset string }

func (e *emptySourceError) Error() string {
	if e.subset != "" {
		return fmt.Sprintf("no record of the source is in the subset (%s): nothing was imported (run %s, %s)", e.subset, e.run, e.source)
	}
	return fmt.Sprintf("the source held no records: nothing was imported (run %s, %s)", e.run, e.source)
}

// verifyError: verify found messages missing, duplicated, out of order or
// unexpected. marked: the missing ones were recorded as failed; repaired:
// and sent again (verify --repair).
type verifyError struct {
	rep              *importer.VerifyReport
	marked, repaired bool
}

func (e *verifyError) Error() string {
	if e.repaired {
		return fmt.Sprintf("verify: run %s: %s sent again; %s duplicated, %s out of order, %s unexpected", e.rep.Run,
			nouns(e.rep.Marked, "missing message", "missing messages"), count(e.rep.DuplicatedCount), count(e.rep.OutOfOrderCount), count(e.rep.UnexpectedCount))
	}
	return fmt.Sprintf("verify: run %s: %s missing, %s duplicated, %s out of order, %s unexpected", e.rep.Run, count(e.rep.MissingCount),
		count(e.rep.DuplicatedCount), count(e.rep.OutOfOrderCount), count(e.rep.UnexpectedCount))
}

// hints says what to do about what verify found.
func (e *verifyError) hints() []string {
	r, run := e.rep, shellQuote([]string{e.rep.Run})
	var h []string
	switch {
	case r.MissingCount > 0 && e.repaired:
	case r.Marked > 0:
		h = append(h, fmt.Sprintf("the missing messages are recorded as failed: kommo-import retry --run %s (or verify --repair) sends them again, after the newer ones their chats show", run))
	case r.MissingCount > 0:
		h = append(h, "verify again without --mark=false to record the missing messages as failed, then kommo-import retry --run "+run+" sends them")
	}
	if r.OutOfOrderCount > 0 {
		h = append(h, "a message out of order is in its chat where it arrived: sending cannot move it (a backfill or a retry puts messages after newer ones; --older skip leaves a backfill out)")
	}
	if r.UnexpectedCount > 0 || r.DuplicatedCount > 0 {
		h = append(h, "do not retry messages listed as unexpected: they are in the chat already")
	}
	return h
}

// commandError is what Run returns: the command's error with what the
// invocation learned on the way (how to resume it, the log format).
type commandError struct {
	err error
	inv invocationFacts
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// outcome is an error put in words: the exit code, the message and what to
// try, one line each.
type outcome struct {
	code  int
	msg   string
	hints []string
}

// ExitCode maps err (from Run) to the process exit code, and prints its
// message and hints to w: text, or one JSON object when the command logged
// JSON (--log-format json).
func ExitCode(err error, w io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return ExitOK
	}
	if errors.Is(err, syscall.EPIPE) {
		return ExitBrokenPipe // stderr is likely the same closed pipe: say nothing
	}
	var facts invocationFacts
	var ce *commandError
	if errors.As(err, &ce) {
		facts = ce.inv
	}
	o := resolveExitCode(err, facts)
	printOutcome(w, o, facts.logJSON)
	return o.code
}

// printOutcome prints o's message and hints: text, or one JSON object.
func printOutcome(w io.Writer, o outcome, asJSON bool) {
	if asJSON {
		level := slog.LevelError
		if o.code == ExitIncomplete || o.code == ExitInterrupted {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.Int("exit_code", o.code)}
		if len(o.hints) > 0 {
			attrs = append(attrs, slog.Any("try", o.hints))
		}
		slog.New(slog.NewJSONHandler(w, nil)).LogAttrs(context.Background(), level, o.msg, attrs...)
		return
	}
	fmt.Fprintf(w, "kommo-import: %s\n", o.msg)
	for i, h := range o.hints {
		if i == 0 {
			fmt.Fprintf(w, "Try: %s\n", h)
		} else {
			fmt.Fprintf(w, "     %s\n", h)
		}
	}
}

// resolveExitCode is the one place that puts errors in words: every error a
// command returns gets its exit code, its message and what to try, naming
// the flags and environment variables involved.
func resolveExitCode(err error, inv invocationFacts) outcome {
	var (
		ee       *exitError
		stop     *importer.StopError
		intr     *importer.InterruptedError
		mismatch *importer.MismatchError
		rateErr  *importer.RateError
		source   *importer.SourceError
		badURL   *importer.DatabaseURLError
		dbDown   *importer.ConnectError
		inc      *incompleteError
		empty    *emptySourceError
		verify   *verifyError
		mediaErr *importer.MediaError
		needsMed *importer.MediaNeededError
		contacts *importer.ContactsError
	)
	resume := inv.resumeHints("resume with: ")
	// inDoubt is what a hard stop of a sending command leaves behind.
	const inDoubt = "a message whose request was in flight stays in doubt, and is looked up in its chat's history on resume before it is ever sent again"
	switch {
	case errors.As(err, &ee):
		return outcome{ee.code, oneLine(err.Error(), 0), splitHint(ee.hint)}

	case errors.Is(err, errHardStop):
		o := outcome{code: ExitInterrupted, msg: "stopped at once, without waiting for the command to finish"}
		if inv.sends {
			o.msg += ": " + inDoubt
		}
		if inv.resume != "" {
			o.hints = resume
		} else {
			o.hints = []string{"run the same command again"}
		}
		return o

	case errors.As(err, &stop):
		return outcome{ExitOperator, oneLine(err.Error(), 0), append([]string{stopHint(stop)}, inv.resumeHints("then resume with: ")...)}

	case errors.As(err, &mediaErr):
		return mediaOutcome(mediaErr, inv) // media.go

	case errors.As(err, &needsMed):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			"give the media flags the run was started with (--media-store with its credentials, or --media-base-url): a local path is never sent to Kommo"}}
	case errors.As(err, &contacts):
		return contactsOutcome(contacts, inv)

	case errors.Is(err, importer.ErrLinkingNeeded):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			"resume it with the run command that started it (kommo-import status --run " + shellQuote([]string{inv.run}) + " prints it), with --link-contacts and " + envKommoToken + " set; then retry"}}

	case errors.As(err, &intr):
		o := outcome{code: ExitInterrupted, msg: oneLine(err.Error(), 0)}
		if intr.Cause == importer.CauseSignal && inv.hard && inv.sends {
			o.msg += "; " + inDoubt
		}
		switch intr.Cause {
		case importer.CauseAPIUnreachable:
			o.msg = fmt.Sprintf("no Chats API answered at %s (--api-url, env %s): %v", inv.apiURL, envAPIURL, intr.Err)
			o.hints = []string{"check --api-url and the network (a proxy, a firewall, DNS); nothing was sent"}
		case importer.CauseAPIUnavailable:
			o.hints = []string{"the API at " + inv.apiURL + " kept failing (see the error above); wait for it to recover, or raise --max-attempts to be more patient"}
		case importer.CauseDatabaseUnavailable:
			o.hints = []string{"check that PostgreSQL is up (" + envDatabaseURL + "); raise --db-outage-limit to wait longer. Messages whose checkpoint was lost are looked up, never resent blindly"}
		}
		o.hints = append(o.hints, resume...)
		return o

	case errors.As(err, &mismatch):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{mismatchHint(mismatch)}}

	case errors.As(err, &rateErr):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			fmt.Sprintf("give --rate %g, as the live process does (the scope has one rate: together the processes keep to it), or stop that process first", rateErr.InForce)}}

	case errors.Is(err, importer.ErrRunAbandoned):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{"an abandoned run is never resumed: give another --run name to import its source again (messages already sent are skipped)"}}

	case errors.Is(err, importer.ErrRunFinished):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			"a new export of a table, a query or stdin is a new run: leave --run out (the run is named for you) or give another --run name; messages already sent are skipped"}}

	case errors.Is(err, importer.ErrNoRun):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{"kommo-import runs lists the runs"}}

	case errors.Is(err, importer.ErrNotPlanned):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{"it has nothing to do yet: resume it with kommo-import run (the same command that started it)"}}

	case errors.Is(err, importer.ErrRunLive):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			"kommo-import status --run " + shellQuote([]string{inv.run}) + " shows the live processes (host and pid); stop them first (Ctrl-C). " +
				"A killed process stops counting as live at once (its database session ends with it); a host cut off from the network, after 4 seconds without a heartbeat"}}

	case errors.Is(err, importer.ErrRunHasSent):
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{
			"its rows are what keeps a re-sync from sending those messages twice; abandon it instead: kommo-import runs abandon " + shellQuote([]string{inv.run})}}

	case errors.As(err, &source):
		o := outcome{code: ExitFatal, msg: oneLine(err.Error(), 0), hints: []string{"check the source " + source.Name + " (staging resumes where it stopped)"}}
		o.hints = append(o.hints, inv.resumeHints("then resume with: ")...)
		return o

	case errors.As(err, &badURL):
		h := "percent-encode @ : / ? # % and spaces in the user name and password (%40 %3A %2F %3F %23 %25 %20): postgres://USER:PASSWORD@HOST:5432/DATABASE"
		if !badURL.URL {
			h = "write postgres://USER:PASSWORD@HOST:5432/DATABASE, or keyword=value settings with values holding spaces or quotes in single quotes (password='it\\'s')"
		}
		return outcome{ExitUsage, oneLine(err.Error(), 0), []string{h}}

	case errors.As(err, &dbDown):
		return outcome{ExitFatal, oneLine(err.Error(), 0), []string{"check that PostgreSQL runs at " + dbDown.Target + " and that " + envDatabaseURL + " (or --database-url) is right; docker compose up -d db starts one"}}

	case errors.As(err, &empty) && empty.subset != "":
		return outcome{ExitIncomplete, oneLine(err.Error(), 0), []string{
			"check --conversation, --conversations, --since, --until and --limit-conversations against the source (kommo-import validate with the same flags counts what they keep)"}}

	case errors.As(err, &empty):
		return outcome{ExitIncomplete, oneLine(err.Error(), 0), []string{
			"check the export that produced " + empty.source + " (a failed export often leaves an empty file); give --allow-empty when an empty source is expected"}}

	case errors.As(err, &inc):
		o := outcome{code: ExitIncomplete, msg: oneLine(err.Error(), 0)}
		if !inc.listed {
			o.hints = []string{"kommo-import report --run " + shellQuote([]string{inc.run}) + " lists them"}
		}
		o.hints = append(o.hints, splitHint(nextSteps(inc.run, inc.failed, inc.rejected))...)
		return o

	case errors.As(err, &verify):
		return outcome{ExitIncomplete, oneLine(err.Error(), 0), verify.hints()}

	case inv.stopped && (errors.Is(err, context.Canceled) || errors.Is(err, importer.ErrInterrupted)):
		o := outcome{code: ExitInterrupted, msg: oneLine(err.Error(), 0)}
		if !errors.Is(err, importer.ErrInterrupted) {
			o.msg = "interrupted: " + o.msg
		}
		if inv.hard && inv.sends {
			o.msg += "; " + inDoubt
		}
		if inv.resume != "" {
			o.hints = resume
		} else {
			o.hints = []string{"run the same command again"}
		}
		return o
	}
	o := outcome{code: ExitFatal, msg: oneLine(err.Error(), 0)}
	if inv.resume != "" {
		o.hints = inv.resumeHints("fix the cause, then resume with: ")
	}
	return o
}

func splitHint(h string) []string {
	if h == "" {
		return nil
	}
	return strings.Split(h, "\n")
}

// stopHint says what the operator does about a run stopped for them.
func stopHint(e *importer.StopError) string {
	switch e.Reason {
	case importer.StopUnknownScope:
		return "check --scope-id (env " + envScopeID + ") and --api-url (env " + envAPIURL + "); connect the channel to the account again (kommo-import connect) if the integration was reinstalled"
	case importer.StopBlocked:
		return "ask Kommo support to lift the block (give the IP, the account subdomain and id); lower --rate if you raised it above 7"
	case importer.StopClockSkew:
		return "set this machine's clock right (enable NTP)"
	}
	return "check that " + envChannelSecret + " (or --channel-secret-file) is the secret of this channel and --scope-id (env " + envScopeID + ") its scope in this account"
}

// contactsOutcome is a refusal of the main API for a run that links chats:
// at the preflight (nothing written or sent) a wrong token or one that may
// not link is the command's setting (exit 2), an API that does not answer
// an interruption (4); during the run it stops until the operator acts (5)
// and resumes with the same command.
func contactsOutcome(e *importer.ContactsError, inv invocationFacts) outcome {
	o := outcome{code: ExitOperator, msg: oneLine(e.Error(), 0)}
	code, hint, ok := contactsRefusal(e.Err)
	switch {
	case ok:
		o.hints = []string{hint}
		if e.Preflight {
			o.code = code
		}
	case e.Err.Status == 0 || e.Err.Retryable():
		o.code = ExitInterrupted
		o.hints = []string{"check --kommo-domain (" + e.Host + ") and the network; nothing was sent"}
	default:
		o.code = ExitUsage
		o.hints = []string{"check --kommo-domain (" + e.Host + "): it is the address you log in at, e.g. mycompany.kommo.com"}
	}
	if !e.Preflight {
		o.hints = append(o.hints, inv.resumeHints("then resume with: ")...)
	}
	return o
}

// mismatchHint says how to run a job that is not the named run's.
func mismatchHint(e *importer.MismatchError) string {
	switch e.Field {
	case "source version":
		return "give another --run name to import the new version (messages already sent are skipped), or restore the file"
	case "scope":
		return "give another --run name, or the run's scope with --scope-id (env " + envScopeID + ")"
	case "source":
		return "resume it with the same --source, or give another --run name"
	case "contacts":
		return "resume it with the contacts flags it was started with (--link-contacts, --create-contacts: a run links all its chats or none), or give another --run name"
	}
	return "run it with --notify " + e.Have + ", or give another --run name"
}
