package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
)

const retryHelp = `
Send a run's failed messages again, once their cause is fixed (see
kommo-import report). In one transaction the failed messages go back to
pending with their error cleared, the silent rule of the plan is applied to
their conversations again (the newest message of a conversation is the loud
one, and only if it is not sent yet: a failed newest message is loud again,
every other one stays silent), and their conversations are opened again; then
they are sent exactly as the run command sends, with the same checkpoints,
rate limit and exit codes. Messages already sent are never sent again.

A retry that is interrupted resumes with the same command (or with run).
Rejected records are not retried: they never reached the database; fix them
in the source and import it as a new run.

Example:
  kommo-import report --run my-import
  kommo-import retry --run my-import`

// apiFlags are the Chats API and database flags that retry and verify share
// with run, under the same names, defaults and environment variables.
type apiFlags struct {
	db         dbFlags
	logs       logFlags
	metrics    metricsFlags
	run        string
	scopeID    string
	apiURL     string
	secretFile string
	rate       float64
	timeout    time.Duration
	insecure   bool
	jsonOut    bool
}

func (f *apiFlags) register(fs *flag.FlagSet, env Env, runUsage string) {
	f.db.register(fs, env)
	f.logs.register(fs)
	f.metrics.register(fs)
	fs.StringVar(&f.run, "run", "", runUsage)
	fs.StringVar(&f.scopeID, "scope-id", env.Getenv(envScopeID), "the channel's scope_id (env "+envScopeID+"); default: the run's, and it must match the run's")
	fs.StringVar(&f.apiURL, "api-url", orDefault(env.Getenv(envAPIURL), chatsapi.DefaultBaseURL), "Chats API base URL (env "+envAPIURL+"); kommo-sim's URL for a rehearsal")
	fs.StringVar(&f.secretFile, "channel-secret-file", "", "read the channel secret from this file instead of env "+envChannelSecret)
	fs.Float64Var(&f.rate, "rate", 5, "requests per second for the whole run, all processes together (Kommo documents at most 7); -1: no limit, for kommo-sim only")
	fs.DurationVar(&f.timeout, "request-timeout", 30*time.Second, "time limit of one HTTP request")
	fs.BoolVar(&f.insecure, "insecure-allow-plain-http", false, "DANGEROUS: allow --api-url with plain http to a non-loopback host (the secret-signed requests travel unencrypted)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
}

// check validates the flags that need no database and reads the secret.
func (f *apiFlags) check(env Env) (signer.Secret, error) {
	if f.rate == 0 || (f.rate < 0 && f.rate != -1) {
		return "", usageError(errors.New("--rate must be above 0 (Kommo documents at most 7 requests/s), or -1 for no limit against kommo-sim"))
	}
	return readSecret(env, f.secretFile)
}

// runStatus reads the run and settles the scope: the run's, which
// --scope-id (or its environment variable), when set, must equal.
func (f *apiFlags) runStatus(ctx context.Context, pool *pgxpool.Pool) (*importer.RunStatus, error) {
	st, err := importer.Status(ctx, pool, f.run)
	if errors.Is(err, importer.ErrNoRun) {
		return nil, withHint(ExitUsage, err, "kommo-import runs lists the runs")
	}
	if err != nil {
		return nil, err
	}
	if f.scopeID != "" && f.scopeID != st.ScopeID {
		return nil, withHint(ExitUsage, fmt.Errorf("run %q belongs to scope %s, not %s", st.Name, st.ScopeID, f.scopeID),
			"give the run's scope with --scope-id, or unset "+envScopeID)
	}
	f.scopeID = st.ScopeID
	return st, nil
}

// apiSession is what a command that talks to the API holds: the metrics
// server (when asked for) and the client. The importer paces every request.
type apiSession struct {
	met    *metrics
	client *chatsapi.Client
}

// session starts the metrics (if --metrics-addr) and builds the client; close
// releases both.
func (f *apiFlags) session(log *slog.Logger, run string, pool *pgxpool.Pool, secret signer.Secret) (*apiSession, error) {
	met, err := f.metrics.start(log, run, pool)
	if err != nil {
		return nil, err
	}
	client, err := chatsapi.New(chatsapi.Config{
		BaseURL: f.apiURL, ScopeID: f.scopeID, Secret: secret,
		Timeout: f.timeout, AllowInsecureHTTP: f.insecure,
		WrapTransport: met.wrapTransport,
	})
	if err != nil {
		met.close()
		return nil, usageError(err)
	}
	return &apiSession{met: met, client: client}, nil
}

func (s *apiSession) close() {
	s.client.CloseIdleConnections()
	s.met.close()
}

func runRetry(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	fs := newFlagSet(env, "retry", "--run NAME [flags]", retryHelp)
	var f apiFlags
	var sf sendFlags
	f.register(fs, env, "the run's name (kommo-import runs lists them); required")
	sf.register(fs)
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if f.run == "" {
		return withHint(ExitUsage, errors.New("retry: --run is required"), "kommo-import runs lists the runs")
	}
	secret, err := f.check(env)
	if err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	log, bar, err := sf.logger(env, &f.logs)
	if err != nil {
		return err
	}

	pool, err := f.db.open(ctx, int32(sf.workers+4))
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := f.runStatus(ctx, pool)
	if err != nil {
		return err
	}
	if !st.StagingDone || st.State == "staging" {
		return withHint(ExitUsage, fmt.Errorf("retry: run %s has not finished staging: it has nothing to retry yet", st.Name),
			"resume it with kommo-import run --run "+shellQuote([]string{st.Name})+" --source ...")
	}
	api, err := f.session(log, st.Name, pool, secret)
	if err != nil {
		return err
	}
	defer api.close()
	im, err := importer.New(pool, api.client, importer.Config{
		Run: st.Name, ScopeID: st.ScopeID, Source: sources.Identity{Label: st.Source, Version: st.SourceVersion}, Notify: st.Notify,
		Rate: f.rate, Workers: sf.workers, ReconcileWait: sf.reconcile, MaxAttempts: sf.maxAttempts, Logger: log,
		DBOutageLimit: sf.dbOutage,
	})
	if err != nil {
		return usageError(err)
	}
	api.met.watchImporter(im)
	api.met.watchLimiter(im.Limiter())

	n, err := importer.ResetFailed(ctx, pool, st.Name)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	log.Info("failed messages set to be sent again", "run", st.Name, "messages", n)

	sum, runErr := sf.sendRun(ctx, env, log, im, sig, bar)
	resume := "kommo-import " + shellQuote(append([]string{"retry"}, withRunFlag(args, st.Name)...))
	return finishSend(env, sum, runErr, f.jsonOut, resume)
}
