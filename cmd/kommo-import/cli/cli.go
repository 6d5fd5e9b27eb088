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
	"strings"
)

// Env is everything a command may touch outside its arguments.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error
}

func commands() []command {
	return []command{
		{"run", "stage a source, plan it and send it to the Chats API (resumable)", runRun},
		{"validate", "read a source and report every bad record, sending nothing", runValidate},
		{"status", "show what a run has done and what is left", runStatus},
		{"runs", "list the runs in the database", runRuns},
		{"report", "list a run's failed and rejected messages with their reasons", runReport},
		{"retry", "send a run's failed messages again, after their cause is fixed", runRetry},
		{"verify", "read chat history back from the API and check every sent message is there once", runVerify},
		{"connect", "connect the channel to an account and print the scope_id", runConnect},
		{"migrate", "apply the database schema and exit", runMigrate},
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
Run "kommo-import <command> --help" for a command's flags.

Exit codes:
  0  done: everything sent (or valid)
  1  fatal error
  2  usage or configuration error
  3  finished, but some messages failed or some records were rejected
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
// interrupt signals: the first asks for a soft stop, a second for a hard one.
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
	case "version", "--version":
		fmt.Fprintln(env.Stdout, "kommo-import", Version)
		return nil
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, env, args[1:], sig)
		}
	}
	usage(env.Stderr)
	return usageError(fmt.Errorf("unknown command %q", name))
}

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// newFlagSet returns a flag set for a subcommand whose --help prints the
// summary, the usage line and the flags to stdout.
func newFlagSet(env Env, name, usageLine, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kommo-import %s %s\n\n%s\n\nFlags:\n", name, usageLine, strings.TrimSpace(help))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; --help prints usage to stdout (once) and
// returns errHelp. Parse errors print usage to stderr, as the flag package does.
func parseFlags(fs *flag.FlagSet, env Env, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(env.Stdout)
			fs.Usage()
			return errHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	return nil
}
