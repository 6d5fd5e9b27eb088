package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
)

const runHelp = `
Stage a source into PostgreSQL, plan it, and send every message to the Kommo
Chats API: in chronological order within each conversation, silent except the
newest message of each conversation (one incoming lead and one notification per
chat), at most --rate requests per second for all workers and processes of the
run together.

Every step is checkpointed. Run the same command again after any interruption
(Ctrl-C, kill, crash, network or API outage) and it resumes where it stopped,
sending nothing twice: a message whose request may have landed is looked up in
the chat's history before it is ever sent again. Several processes may work the
same run at once; they share its rate.

The channel secret is read from the environment (KOMMO_CHANNEL_SECRET) or from
--channel-secret-file, never from a flag value; it is never printed or stored.

Examples:
  kommo-import run --source csv:export.csv --scope-id "$KOMMO_SCOPE_ID"
  kommo-import run --source jsonl:history.jsonl.gz --rate 6 --workers 16
  kommo-import run --source postgres --source-dsn "$OLD_DB" --source-table messages`

type runFlags struct {
	apiFlags
	send   sendFlags
	source sources.Spec
	users  userFlags
	notify string
	batch  int
}

func runRun(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	fs := newFlagSet(env, "run", "--source SOURCE --scope-id ID [flags]", runHelp)
	var f runFlags
	registerSourceFlags(fs, &f.source)
	registerUserFlags(fs, &f.users, envKommoToken)
	f.apiFlags.register(fs, env, "run name; default: derived from the scope and the source, so the same command resumes")
	f.send.register(fs)
	fs.IntVar(&f.batch, "stage-batch", 10000, "records per staging transaction (the staging checkpoint)")
	fs.StringVar(&f.notify, "notify", string(importer.NotifyNewest), "newest: the newest message of each conversation is not silent (one lead and one notification per chat); none: every message silent")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	cfg, secret, err := f.validate(env)
	if err != nil {
		return err
	}
	if f.source.Users, err = loadUserMap(ctx, env, f.users); err != nil {
		return err
	}
	spec := f.source
	spec.Stdin = env.Stdin
	cfg.Open = func(ctx context.Context) (importer.Source, error) { return sources.Open(ctx, spec) }
	log, bar, err := f.send.logger(env, &f.logs)
	if err != nil {
		return err
	}
	cfg.Logger = log
	if f.rate > 7 {
		log.Warn("--rate is above Kommo's documented limit of 7 requests/s: expect 429 answers with long pauses, and repeated excess gets the account blocked", "rate", f.rate)
	}

	pool, err := f.db.open(ctx, int32(f.send.workers+4))
	if err != nil {
		return err
	}
	defer pool.Close()
	api, err := f.session(log, cfg.Run, pool, secret)
	if err != nil {
		return err
	}
	defer api.close()
	im, err := importer.New(pool, api.client, cfg)
	if err != nil {
		return usageError(err)
	}
	api.met.watchImporter(im)
	api.met.watchLimiter(im.Limiter())

	sum, runErr := f.send.sendRun(ctx, env, log, im, sig, bar)
	return finishSend(env, sum, runErr, f.jsonOut, "kommo-import run "+shellQuote(withRunFlag(args, cfg.Run)))
}

func (f *runFlags) validate(env Env) (importer.Config, signer.Secret, error) {
	var cfg importer.Config
	if f.scopeID == "" {
		return cfg, "", withHint(ExitUsage, errors.New("no scope: set "+envScopeID+" or --scope-id"), "kommo-import connect prints the scope_id of a channel in an account")
	}
	if f.source.Kind == "" {
		return cfg, "", usageError(errors.New("no source: give --source csv:FILE, jsonl:FILE or postgres"))
	}
	secret, err := f.check(env)
	if err != nil {
		return cfg, "", err
	}
	if err := f.send.check(); err != nil {
		return cfg, "", err
	}
	if f.batch < 1 {
		return cfg, "", usageError(errors.New("--stage-batch must be at least 1"))
	}
	if !importer.Notify(f.notify).Valid() {
		return cfg, "", usageError(fmt.Errorf("--notify must be newest, newest-incoming or none, not %q", f.notify))
	}
	id, err := f.source.Identity()
	if err != nil {
		return cfg, "", usageError(err)
	}
	name := f.run
	if name == "" {
		if id.Stream {
			return cfg, "", withHint(ExitUsage, errors.New("reading from stdin needs --run NAME: a stream has no name to resume by"), "kommo-import run --run my-import --source jsonl:- ...")
		}
		name = importer.DerivedRunName(f.scopeID, id)
	}
	cfg = importer.Config{
		Run: name, ScopeID: f.scopeID, Source: id, Notify: importer.Notify(f.notify),
		Rate: f.rate, Workers: f.send.workers, ReconcileWait: f.send.reconcile, MaxAttempts: f.send.maxAttempts,
		BatchSize: f.batch, DBOutageLimit: f.send.dbOutage,
	}
	return cfg, secret, nil
}

// readSecret reads the channel secret from --channel-secret-file or the
// environment. It is never accepted as a flag value: those show in ps.
func readSecret(env Env, file string) (signer.Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError(fmt.Errorf("--channel-secret-file: %w", err))
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", usageError(fmt.Errorf("--channel-secret-file %s is empty", file))
		}
		return signer.Secret(s), nil
	}
	if s := strings.TrimSpace(env.Getenv(envChannelSecret)); s != "" {
		return signer.Secret(s), nil
	}
	return "", withHint(ExitUsage, errors.New("no channel secret: set "+envChannelSecret+" or give --channel-secret-file"),
		"the secret comes with the channel registration from Kommo support; never pass it as a flag value")
}

// withRunFlag returns args with --run NAME added when it is not there, so the
// printed resume command names the run even if it was derived.
func withRunFlag(args []string, name string) []string {
	for _, a := range args {
		if a == "--run" || a == "-run" || strings.HasPrefix(a, "--run=") || strings.HasPrefix(a, "-run=") {
			return args
		}
	}
	return append(append([]string{}, args...), "--run", name)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func printSummary(w io.Writer, s *importer.Summary, asJSON bool) error {
	if asJSON {
		return writeJSON(w, s)
	}
	fmt.Fprintf(w, "run %s (scope %s): %s\n", s.Name, s.ScopeID, s.Outcome)
	if s.StopReason != "" {
		fmt.Fprintf(w, "  stopped because:     %s\n", s.StopReason)
	}
	fmt.Fprintf(w, "  source:              %s\n", s.Source)
	fmt.Fprintf(w, "  records read:        %d valid, %d rejected; repeated records skipped: %d\n", s.Records, s.Rejected, s.Duplicates)
	fmt.Fprintf(w, "  already in scope:    %d sent before (skipped), %d held by other runs (skipped)\n", s.KnownSent, s.KnownOther)
	if len(s.OtherRuns) > 0 {
		fmt.Fprintf(w, "                       other runs holding them: %s (resume those to send them)\n", strings.Join(s.OtherRuns, ", "))
	}
	fmt.Fprintf(w, "  staged:              %d messages\n", s.Staged)
	fmt.Fprintf(w, "  sent:                %d (%d now), failed %d, pending %d, in doubt %d\n", s.Sent, s.SentNow, s.Failed, s.Pending, s.Sending)
	fmt.Fprintf(w, "  in-doubt reconciled: %d looked up, %d found already delivered\n", s.InDoubt, s.InDoubtFound)
	fmt.Fprintf(w, "  HTTP requests:       %d (%.3f per delivered message), %d retries, %d rate-limited\n", s.Requests, s.RequestsPerMessage, s.Retries, s.RateLimited)
	fmt.Fprintf(w, "  elapsed:             %s, %.2f messages/s\n", (time.Duration(s.ElapsedSeconds * float64(time.Second))).Round(time.Millisecond), s.EffectiveRate)
	return nil
}

func showBar(im *importer.Importer, w io.Writer, stop <-chan struct{}) {
	b := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSpinnerType(14),
	)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var max int64 = -1
	for {
		p := im.Progress()
		if p.Phase == "sending" && p.Total != max {
			max = p.Total
			b.ChangeMax64(max)
		}
		if p.Phase == "sending" {
			_ = b.Set64(p.Done)
		} else {
			_ = b.Set64(p.Read)
		}
		b.Describe(describe(p))
		select {
		case <-stop:
			_ = b.Exit()
			fmt.Fprintln(w)
			return
		case <-t.C:
		}
	}
}

func describe(p importer.Progress) string {
	switch p.Phase {
	case "sending":
		s := fmt.Sprintf("sending  %.1f req/s  ETA %s", p.Rate, eta(p))
		if !p.PausedUntil.IsZero() {
			s += fmt.Sprintf("  PAUSED (429) for %s", time.Until(p.PausedUntil).Round(time.Second))
		}
		if p.DBDown {
			s += "  WAITING FOR THE DATABASE"
		}
		return s
	default:
		return string(p.Phase)
	}
}

// eta is pending ÷ rate: the API's limit, not the recent speed, sets the pace.
func eta(p importer.Progress) string {
	left := p.Total - p.Done
	if left <= 0 {
		return "0s"
	}
	if p.Rate <= 0 {
		return "?"
	}
	d := time.Duration(float64(left) / p.Rate * float64(time.Second))
	if !p.PausedUntil.IsZero() {
		d += time.Until(p.PausedUntil)
	}
	return d.Round(time.Second).String()
}

func logProgress(im *importer.Importer, log *slog.Logger, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p := im.Progress()
		attrs := []any{"phase", p.Phase}
		if p.Phase == "sending" {
			attrs = append(attrs, "done", p.Done, "total", p.Total, "sent_now", p.SentNow, "rate", p.Rate, "eta", eta(p), "processes", p.Processes)
			if !p.PausedUntil.IsZero() {
				attrs = append(attrs, "paused_until", p.PausedUntil.Format(time.RFC3339))
			}
			if p.DBDown {
				attrs = append(attrs, "database", "unavailable, retrying")
			}
		} else {
			attrs = append(attrs, "records_read", p.Read)
		}
		log.Info("progress", attrs...)
	}
}
