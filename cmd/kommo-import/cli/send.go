package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kommo-import/kommo-import/importer"
)

// sendFlags are the flags of the commands that send messages (run, retry).
type sendFlags struct {
	workers     int
	reconcile   time.Duration
	maxAttempts int
	progress    string
	interval    time.Duration
	dbOutage    time.Duration
}

func (s *sendFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&s.workers, "workers", 8, "conversations sent at once by this process")
	fs.DurationVar(&s.reconcile, "reconcile-wait", 10*time.Second, "after a request whose fate is unknown, wait this long for the API's asynchronous processing before looking the message up in history")
	fs.IntVar(&s.maxAttempts, "max-attempts", 8, "attempts per message on 5xx and network errors before the run stops as interrupted")
	fs.StringVar(&s.progress, "progress", "auto", "progress output on stderr: auto (a bar on a terminal, log lines otherwise), bar, log or none")
	fs.DurationVar(&s.interval, "progress-interval", 10*time.Second, "interval of progress log lines")
	fs.DurationVar(&s.dbOutage, "db-outage-limit", 5*time.Minute, "how long sending waits for a lost database before the run stops as interrupted")
}

func (s *sendFlags) check() error {
	if s.dbOutage <= 0 {
		return usageError(errors.New("--db-outage-limit must be above 0"))
	}
	if s.workers < 1 {
		return usageError(errors.New("--workers must be at least 1"))
	}
	switch s.progress {
	case "auto", "bar", "log", "none":
		return nil
	}
	return usageError(fmt.Errorf("--progress must be auto, bar, log or none, not %q", s.progress))
}

// logger returns the command's logger; with a progress bar on a terminal,
// info lines are left out (the bar says the same) unless asked for.
func (s *sendFlags) logger(env Env, logs *logFlags) (*slog.Logger, bool, error) {
	bar := s.progress == "bar" || (s.progress == "auto" && isTerminal(env.Stderr))
	if bar && logs.level == "info" {
		logs.level = "warn"
	}
	log, err := logs.logger(env.Stderr)
	return log, bar, err
}

// sendRun runs im with the signal handling of the sending commands (the
// first signal asks for a soft stop, a second stops at once) and progress output.
func (s *sendFlags) sendRun(ctx context.Context, env Env, log *slog.Logger, im *importer.Importer, sig <-chan os.Signal, bar bool) (*importer.Summary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	soft := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-sig:
			}
			if n == 1 {
				log.Warn("stopping: finishing the requests in flight (interrupt again to stop at once)")
				close(soft)
				continue
			}
			log.Warn("stopping at once")
			cancel()
			return
		}
	}()

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		switch {
		case s.progress == "none":
			<-stopProgress
		case bar:
			showBar(im, env.Stderr, stopProgress)
		default:
			logProgress(im, log, s.interval, stopProgress)
		}
	}()
	sum, err := im.Run(ctx, soft)
	close(stopProgress)
	<-progressDone
	return sum, err
}

// finishSend prints the summary and maps the outcome to the exit code, with
// the command that resumes.
func finishSend(env Env, sum *importer.Summary, runErr error, jsonOut bool, resume string) error {
	if sum != nil {
		if err := printSummary(env.Stdout, sum, jsonOut); err != nil {
			return err
		}
	}
	var stop *importer.StopError
	var mismatch *importer.MismatchError
	switch {
	case errors.As(runErr, &stop):
		return withHint(ExitOperator, runErr, stopHint(stop)+"\nThen resume with: "+resume)
	case errors.As(runErr, &mismatch):
		return withHint(ExitUsage, runErr, mismatchHint(mismatch))
	case errors.Is(runErr, importer.ErrRunAbandoned):
		return withHint(ExitUsage, runErr, "give another --run name to import its source again (messages already sent are skipped)")
	case errors.Is(runErr, importer.ErrInterrupted):
		return withHint(ExitInterrupted, runErr, "resume with: "+resume)
	case runErr != nil:
		return withHint(ExitFatal, runErr, "fix the cause, then resume with: "+resume)
	case sum.Outcome == importer.OutcomeIncomplete:
		return withHint(ExitIncomplete, fmt.Errorf("run %s finished with %d failed messages and %d rejected records", sum.Name, sum.Failed, sum.Rejected),
			"kommo-import report --run "+shellQuote([]string{sum.Name})+" lists them\n"+nextSteps(sum.Name, sum.Failed, sum.Rejected))
	}
	return nil
}

// stopHint says what the operator does about a run stopped for them.
func stopHint(e *importer.StopError) string {
	switch e.Reason {
	case importer.StopUnknownScope:
		return "check --scope-id (" + envScopeID + ") and --api-url; connect the channel to the account again if the integration was reinstalled"
	case importer.StopBlocked:
		return "ask Kommo support to lift the block (give the IP, the account subdomain and id), then run the same command again; lower --rate if you raised it"
	case importer.StopClockSkew:
		return "set this machine's clock right (enable NTP), then run the same command again"
	}
	return "check that " + envChannelSecret + " is the secret of this channel and --scope-id its scope, then run the same command again"
}

// mismatchHint says how to run a job that is not the named run's.
func mismatchHint(e *importer.MismatchError) string {
	switch e.Field {
	case "source version":
		return "give another --run name to import the new version (messages already sent are skipped), or restore the file"
	case "scope":
		return "give another --run name"
	case "source":
		return "resume it with the same source, or give another --run name"
	}
	return "run it with --notify " + e.Have + ", or give another --run name"
}
