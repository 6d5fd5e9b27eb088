package cli

import (
	"flag"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
)

// invocation is one command line being run. The command fills in what the
// exit message needs as it learns it (the run, how to resume), from its own
// goroutine, while Run may read it after a hard stop: hence the mutex.
type invocation struct {
	env   Env
	stop  *stopper
	sinks *logSinks // set by setLogger: the log file gets the exit lines too

	mu    sync.Mutex
	facts invocationFacts
}

// invocationFacts is what resolveExitCode knows of the invocation.
type invocationFacts struct {
	command string
	sends   bool // the command sends messages (run, retry)
	logJSON bool // --log-format json: the exit lines are JSON too
	stopped bool // a signal asked the command to stop
	hard    bool // ... at once
	apiURL  string
	run     string
	// resume is the command line that runs the command again; notes say
	// what to set first for it.
	resume string
	notes  []string
}

func (inv *invocation) set(f func(*invocationFacts)) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	f(&inv.facts)
}

func (inv *invocation) snapshot() invocationFacts {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	f := inv.facts
	f.stopped = inv.stop.stopped()
	f.hard = inv.stop.hard.Load()
	return f
}

// setLogger makes the stop messages and the exit lines follow the command's
// log format.
func (inv *invocation) setLogger(log *slog.Logger, sinks *logSinks) {
	inv.stop.setLogger(log)
	inv.set(func(f *invocationFacts) {
		f.logJSON = sinks.json
		inv.sinks = sinks
	})
}

// setResume records the command line that runs this command again for run
// (its arguments as given, parsed by fs, with --run added when the name was
// derived).
func (inv *invocation) setResume(fs *flag.FlagSet, args []string, run string) {
	line, notes := resumeCommand(fs, inv.env.Getenv, args, run)
	inv.set(func(f *invocationFacts) { f.resume, f.notes, f.run = line, notes, run })
}

// resumeHints is the resume command, after prefix, and what to set first.
func (f invocationFacts) resumeHints(prefix string) []string {
	if f.resume == "" {
		return nil
	}
	return append([]string{prefix + f.resume}, f.notes...)
}

// resumeCommand returns "kommo-import CMD ARGS..." to paste: the arguments
// as given, shell-quoted, with --run NAME added when absent, and the value
// of every secret flag (secretFlags) replaced by its environment variable
// ("$DATABASE_URL"). notes say which variables to set first, when the
// environment does not already hold the value given.
func resumeCommand(fs *flag.FlagSet, getenv func(string) string, args []string, run string) (line string, notes []string) {
	out := []string{"kommo-import", fs.Name()}
	hasRun := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			break // parseFlags has refused it already
		}
		if name == "run" {
			hasRun = true
		}
		takesValue := !isBoolFlag(f.Value) && !hasValue
		if takesValue && i+1 < len(args) {
			i++
			value, hasValue = args[i], true
		}
		if name == configFlag && takesValue && hasValue {
			// Absolute: the line is printed for later, and status prints it
			// in other terminals, wherever they are.
			if abs, err := filepath.Abs(value); err == nil {
				value = abs
			}
			out = append(out, "--"+name, shellQuote([]string{value}))
			continue
		}
		envVar, secret := secretFlags[name]
		switch {
		case secret:
			out = append(out, "--"+name, `"$`+envVar+`"`)
			if getenv(envVar) != value {
				notes = append(notes, "first set "+envVar+" to the value you gave --"+name+" (not shown here: it may hold a password)")
			}
		case takesValue && hasValue:
			out = append(out, shellQuote([]string{a, value}))
		default:
			out = append(out, shellQuote([]string{a}))
		}
	}
	if i < len(args) {
		out = append(out, shellQuote(args[i:]))
	}
	if !hasRun && run != "" {
		out = append(out, "--run", shellQuote([]string{run}))
	}
	return strings.Join(out, " "), notes
}

// shellQuote quotes args for a command line a user can paste.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@+%") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
