// Package cli is the whole of the kommo-import command line: subcommands,
// flags, output and exit codes. main only wires it to the process; tests drive
// Run with buffers and a fake environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Env is everything a command may touch outside its arguments.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// collect, when set, is handed each command's complete flag set in
	// place of parsing it (config.go derives the config keys so).
	collect func(*flag.FlagSet)
}

type command struct {
	name    string
	summary string
	// soft: the first signal asks the command to finish what is in flight
	// (a second stops it at once); otherwise the first stops it at once.
	soft bool
	run  func(ctx context.Context, inv *invocation, args []string) error
}

func commands() []command {
	return []command{
		{"run", "stage a source, plan it and send it to the Chats API (resumable)", true, runRun},
		{"validate", "read a source and report every bad record, sending nothing", false, withSignals(runValidate)},
		{"convert", "write what run would stage as JSONL (any source kind), with validate's report", false, withSignals(runConvert)},
		{"status", "show what a run has done, what is left, and whether a process works it", false, runStatus},
		{"runs", "list the runs in the database; runs abandon|delete NAME", false, runRuns},
		{"report", "list a run's failed and rejected messages with their reasons", false, runReport},
		{"retry", "send a run's failed messages again, after their cause is fixed", true, runRetry},
		{"verify", "read chat history back from the API and check every sent message is there once, in order", true, runVerify},
		{"connect", "connect the channel to an account and print the scope_id", false, runConnect},
		{"contacts", "contacts plan: how --link-contacts would put each chat on a Kommo contact", false, runContacts},
		{"migrate", "apply the database schema and exit", false, withSignals(runMigrate)},
	}
}

// withSignals adapts a command that takes its signals as a channel: it
// gets one that is closed at the first signal.
func withSignals(f func(context.Context, Env, []string, <-chan os.Signal) error) func(context.Context, *invocation, []string) error {
	return func(ctx context.Context, inv *invocation, args []string) error {
		return f(ctx, inv.env, args, inv.stop.first)
	}
}

const usageHead = `kommo-import brings chat history from another messenger into Kommo through
the Chats API, exactly once and in order, checkpointing every message in
PostgreSQL so an interrupted import resumes where it stopped.

Usage:
  kommo-import <command> [flags]

Commands:
`

const usageTail = `
Run "kommo-import <command> --help" for a command's flags; kommo-import
--version prints the version.

Exit codes:
  0  done: everything sent (or valid)
  1  fatal error
  2  usage or configuration error
  3  finished, but some messages failed or some records were rejected,
     or the source held no records (see --allow-empty)
  4  interrupted: run the same command again to resume
  5  stopped for the operator: account blocked, signature refused, clock skew or unknown scope
`

func usage(w io.Writer) {
	fmt.Fprint(w, usageHead)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, usageTail)
}

// Run runs the command line args (without the program name). sig delivers
// interrupt signals: the first asks for a soft stop, a second for a hard
// one; hardStopGrace after the second, Run returns even if the command has
// not. The error, for ExitCode, knows how to say itself.
func Run(ctx context.Context, args []string, env Env, sig <-chan os.Signal) error {
	if len(args) == 0 {
		usage(env.Stderr)
		return usageError(errors.New("no command given"))
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		usage(env.Stdout)
		return nil
	case "version", "--version", "-version":
		fmt.Fprintln(env.Stdout, versionString())
		return nil
	}
	var c *command
	var names []string
	for _, cc := range commands() {
		names = append(names, cc.name)
		if cc.name == name {
			c = &cc
		}
	}
	if c == nil {
		msg := fmt.Sprintf("unknown command %q", name)
		if strings.HasPrefix(name, "-") {
			msg = fmt.Sprintf("%s comes after a command: kommo-import <command> %s", name, name)
		} else if s := nearest(name, names); s != "" {
			msg += ": did you mean " + s + "?"
		}
		return withHint(ExitUsage, errors.New(msg), "kommo-import --help lists the commands")
	}

	ctx, stop := newStopper(ctx, sig, env.Stderr, c.soft)
	defer stop.close()
	inv := &invocation{env: env, stop: stop, facts: invocationFacts{command: c.name, sends: c.soft}}
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, inv, args[1:]) }()
	var err error
	select {
	case err = <-done:
	case <-stop.forced:
		err = errHardStop
	}
	inv.mu.Lock()
	sinks := inv.sinks
	inv.mu.Unlock()
	defer sinks.close()
	if err == nil || errors.Is(err, errHelp) {
		return err
	}
	ce := &commandError{err: err, inv: inv.snapshot()}
	if sinks != nil && sinks.file != nil {
		sinks.mu.Lock()
		printOutcome(sinks.file, resolveExitCode(ce, ce.inv), ce.inv.logJSON)
		sinks.mu.Unlock()
	}
	return ce
}

// Version is the release, set at build time with
// -ldflags "-X github.com/kommo-import/kommo-import/cmd/kommo-import/cli.Version=v1.2.3";
// without it, the module version from the build information.
var Version = ""

// versionString is the version and what the build information says of the
// source it was built from.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(Version, bi)
}

// formatVersion is "kommo-import VERSION, revision REV of TIME[ with local
// changes], GO": the -ldflags version if set, else the module's (a tagged
// version, or a pseudo-version derived from the commit).
func formatVersion(ldflags string, bi *debug.BuildInfo) string {
	v := ldflags
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, at, modified string
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	if v == "" && rev == "" {
		v = "(unknown version: built without version control information)"
	}
	out := "kommo-import " + v
	if rev != "" {
		if v == "" {
			out = "kommo-import"
		} else {
			out += ","
		}
		out += " revision " + rev
		if at != "" {
			out += " of " + at
		}
		if modified == "true" {
			out += " with local changes"
		}
	}
	return out + ", " + runtime.Version()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
