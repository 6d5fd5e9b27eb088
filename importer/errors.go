package importer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
)

// The importer reports why a run ended in types, never in command-line
// words: the CLI maps each to its message, hint and exit code in one place.

// StopReason says why a run stopped until an operator acts.
type StopReason int

// The reasons of a StopError.
const (
	// StopBlocked: a 403 that is not a signature error (often an HTML page):
	// the account or IP is blocked, typically for exceeding the rate limit.
	StopBlocked StopReason = iota + 1
	// StopBadSignature: 403 ORIGIN_INVALID_SIGNATURE with the clocks in step:
	// the channel secret is not this channel's (or the scope is another's).
	StopBadSignature
	// StopClockSkew: the signature was refused and the API's clock is
	// minutes away from ours (signatures are valid for 15 minutes).
	StopClockSkew
	// StopUnknownScope: the API does not know the scope (404
	// ORIGIN_NOT_REGISTERED, or a redirect).
	StopUnknownScope
)

func (r StopReason) String() string {
	switch r {
	case StopBlocked:
		return "blocked"
	case StopBadSignature:
		return "bad signature"
	case StopClockSkew:
		return "clock skew"
	case StopUnknownScope:
		return "unknown scope"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// StopError is returned when the API refuses the whole scope: every further
// request would be refused the same way, so the run stops with nothing lost
// (the refused message goes back to pending).
type StopError struct {
	Reason StopReason
	// Skew is how far this machine's clock is ahead of the API's (negative:
	// behind), for StopClockSkew.
	Skew time.Duration
	Err  *chatsapi.Error // the API's answer
}

func (e *StopError) Error() string {
	switch e.Reason {
	case StopBlocked:
		return fmt.Sprintf("the API answered %d to a well-formed request: the account or IP is probably blocked for exceeding the rate limit", e.Err.Status)
	case StopUnknownScope:
		return fmt.Sprintf("the API does not know this scope (%v)", e.Err)
	case StopClockSkew:
		dir := "behind"
		if e.Skew > 0 {
			dir = "ahead of"
		}
		return fmt.Sprintf("the API refused the request signature, and this machine's clock is about %s %s the API's (%s): signed requests are valid for 15 minutes from their Date",
			e.Skew.Abs().Round(time.Minute), dir, e.Err.ServerDate.UTC().Format(time.RFC1123Z))
	}
	return "the API refused the request signature (ORIGIN_INVALID_SIGNATURE)"
}

func (e *StopError) Unwrap() error { return e.Err }

// ErrInterrupted is in the chain of every error that ends a run early for a
// reason another attempt may not have: a signal, an API or database outage.
// Running the same command again resumes. *InterruptedError carries the cause.
var ErrInterrupted = errors.New("interrupted")

// InterruptCause says why a run was interrupted.
type InterruptCause int

// The causes of an InterruptedError.
const (
	// CauseSignal: a soft or hard stop was asked for.
	CauseSignal InterruptCause = iota + 1
	// CauseAPIUnavailable: the API kept failing (5xx, timeouts, connection
	// errors) for one message MaxAttempts times in a row.
	CauseAPIUnavailable
	// CauseAPIUnreachable: the preflight request found no API at the URL.
	CauseAPIUnreachable
	// CauseDatabaseUnavailable: the database was unreachable for longer than
	// DBOutageLimit.
	CauseDatabaseUnavailable
)

func (c InterruptCause) String() string {
	switch c {
	case CauseSignal:
		return "signal"
	case CauseAPIUnavailable:
		return "API unavailable"
	case CauseAPIUnreachable:
		return "API unreachable"
	case CauseDatabaseUnavailable:
		return "database unavailable"
	}
	return fmt.Sprintf("InterruptCause(%d)", int(c))
}

// InterruptedError ends a run early; errors.Is(err, ErrInterrupted) holds.
type InterruptedError struct {
	Cause  InterruptCause
	Detail string // what was going on, e.g. "staging at line 1200", "message m-17"
	Err    error  // the last failure: a *chatsapi.Error, a database error, a context error
}

func (e *InterruptedError) Error() string {
	var msg string
	switch e.Cause {
	case CauseSignal:
		msg = "interrupted by a signal"
	case CauseAPIUnavailable:
		msg = "the API keeps failing"
	case CauseAPIUnreachable:
		msg = "the API is unreachable"
	case CauseDatabaseUnavailable:
		msg = "the database has been unavailable for too long"
	default:
		msg = "interrupted"
	}
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	if e.Err != nil && !(e.Cause == CauseSignal && errors.Is(e.Err, context.Canceled)) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInterrupted) true.
func (e *InterruptedError) Is(target error) bool { return target == ErrInterrupted }

func interrupted(cause InterruptCause, detail string, err error) error {
	return &InterruptedError{Cause: cause, Detail: detail, Err: err}
}

// MismatchError is returned when a run name is given for another job than
// the one the run was started for.
type MismatchError struct {
	Run   string
	Field string // "scope", "source", "source version", "notify" or "contacts"
	Have  string // the run's
	Want  string // this invocation's
	// StagingDone: the run has staged its source whole (for "source version").
	StagingDone bool
}

func (e *MismatchError) Error() string {
	switch e.Field {
	case "source version":
		what := "has not finished staging it"
		if e.StagingDone {
			what = "has staged that version already"
		}
		return fmt.Sprintf("run %q imported its source when it was %s; it is %s now, and the run %s", e.Run, e.Have, e.Want, what)
	case "scope":
		return fmt.Sprintf("run %q belongs to scope %s, not %s", e.Run, e.Have, e.Want)
	case "source":
		return fmt.Sprintf("run %q was started from %s, not %s", e.Run, e.Have, e.Want)
	case "contacts":
		return fmt.Sprintf("run %q was started %s, and cannot go on %s", e.Run, linkModeWords(e.Have), linkModeWords(e.Want))
	}
	return fmt.Sprintf("run %q was planned with %s %s; it cannot change to %s", e.Run, e.Field, e.Have, e.Want)
}

// SourceError is returned when the source cannot be opened or read (a
// missing file, a truncated archive, a failing query): nothing another
// attempt would fix by itself, and never a database outage.
type SourceError struct {
	Name string // the source as the reader names it
	Err  error
}

func (e *SourceError) Error() string { return fmt.Sprintf("source %s: %v", e.Name, e.Err) }
func (e *SourceError) Unwrap() error { return e.Err }

// Run lifecycle errors.
var (
	// ErrNoRun: the database has no run of that name.
	ErrNoRun = errors.New("no such run")
	// ErrNotPlanned: the run has not finished staging and planning; resume it
	// with Run first.
	ErrNotPlanned = errors.New("run is not staged and planned yet")
	// ErrRunLive: a live process works the run; it cannot be abandoned or
	// deleted under it.
	ErrRunLive = errors.New("a process is working the run")
	// ErrRunHasSent: the run sent messages, so its rows are what keeps a
	// re-sync from sending them again; it can be abandoned, not deleted.
	ErrRunHasSent = errors.New("the run has sent messages")
	// ErrRunAbandoned: the run was abandoned; it is never resumed.
	ErrRunAbandoned = errors.New("the run was abandoned")
	// ErrRunFinished: a run of a source that cannot be versioned (a table, a
	// query, stdin) was named explicitly after it finished: a new export of
	// such a source is a new run.
	ErrRunFinished = errors.New("the run has finished")
)

// RateError is returned when a live process already sends to the scope at
// another rate: one rate per scope, or the two together would draw 429s.
type RateError struct {
	Scope   string
	Rate    float64 // this invocation's
	InForce float64 // the live process's
}

func (e *RateError) Error() string {
	return fmt.Sprintf("scope %s is being sent at %g requests/s by a live process; this process was given %g", e.Scope, e.InForce, e.Rate)
}

// linkModeWords says a run's linking mode by its flags.
func linkModeWords(mode string) string {
	switch mode {
	case linkModeLink:
		return "with --link-contacts"
	case linkModeCreate:
		return "with --link-contacts --create-contacts"
	}
	return "without --link-contacts"
}
