package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/migrations"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
)

// session is what a command that talks to the Chats API holds: its logger,
// the database, the API client (observed by the metrics when asked for) and,
// for the commands that send, the importer's configuration. openSession
// builds it the same way for run, retry and verify.
type session struct {
	log    *slog.Logger
	sinks  *logSinks
	bar    bool // progress as a bar
	pool   *pgxpool.Pool
	client *chatsapi.Client
	met    *metrics
	cfg    importer.Config
}

// sessionFlags are the flag groups a session is built from.
type sessionFlags struct {
	db   dbFlags
	logs logFlags
	api  apiFlags
	send *sendFlags // nil: the command does not send (verify)
}

func (f *sessionFlags) register(fs *flag.FlagSet, env Env) {
	f.db.register(fs, env)
	f.logs.register(fs)
	f.api.register(fs, env)
	if f.send != nil {
		f.send.register(fs)
	}
}

// check validates the flags before anything is opened.
func (f *sessionFlags) check() error {
	if err := f.api.check(); err != nil {
		return err
	}
	if f.send != nil {
		return f.send.check()
	}
	return nil
}

// runTarget is the run a session works: named by the command's flags (run)
// or read from the database (retry, verify).
type runTarget struct {
	Run string
	// Derived: Run was derived from the scope and the source, not given.
	// The importer settles the final name (a finished table or query run
	// is followed by NAME.2, ...).
	Derived bool
	ScopeID string
	Source  sources.Identity
	Notify  importer.Notify
	Open    importer.OpenFunc
}

// openSession builds the logger, reads the channel secret, opens the
// database, settles the run (target is called with the open pool), starts
// the metrics and builds the client and the importer configuration. close
// releases it all.
func openSession(ctx context.Context, inv *invocation, f *sessionFlags, target func(context.Context, *pgxpool.Pool) (runTarget, error)) (_ *session, err error) {
	env := inv.env
	s := &session{}
	s.bar = f.send != nil && f.send.wantsBar(env, f.logs.format == "json")
	if s.log, s.sinks, err = f.logs.open(env.Stderr, s.bar); err != nil {
		return nil, err
	}
	inv.setLogger(s.log, s.sinks)
	inv.set(func(fa *invocationFacts) { fa.apiURL = f.api.apiURL })
	secret, err := readSecret(env, f.api.secretFile, s.log)
	if err != nil {
		return nil, err
	}
	if f.api.rate > 7 {
		s.log.Warn("--rate is above Kommo's documented limit of 7 requests/s: expect 429 answers with long pauses, and repeated excess gets the account blocked", "rate", f.api.rate)
	}
	conns := int32(4)
	if f.send != nil {
		conns = int32(f.send.workers + 4)
		if f.send.media.enabled() {
			conns += int32(f.send.media.uploads + 1) // the uploader records each file
		}
	}
	// A sending command that starts while the database restarts waits for
	// it, as it would mid-run.
	var wait time.Duration
	if f.send != nil {
		wait = f.send.dbOutage
	}
	err = importer.WaitForDatabase(ctx, wait, s.log, func(ctx context.Context) (err error) {
		s.pool, err = f.db.open(ctx, conns)
		return err
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	t, err := target(ctx, s.pool)
	if err != nil {
		return nil, err
	}
	if f.api.scopeID != "" && f.api.scopeID != t.ScopeID {
		return nil, withHint(ExitUsage, fmt.Errorf("run %q belongs to scope %s, not %s", t.Run, t.ScopeID, f.api.scopeID),
			"give the run's scope with --scope-id, or unset "+envScopeID)
	}
	inv.set(func(fa *invocationFacts) { fa.run = t.Run })
	if s.met, err = f.api.metrics.start(s.log, inv.facts.command, t.Run, s.pool, env.Getenv); err != nil {
		return nil, err
	}
	if s.client, err = f.api.client(t.ScopeID, secret, s.met); err != nil {
		return nil, err
	}
	name := t.Run
	if t.Derived {
		name = ""
	}
	s.cfg = importer.Config{
		Run: name, ScopeID: t.ScopeID, Source: t.Source, Open: t.Open, Notify: t.Notify,
		Rate: f.api.rate, RequestTimeout: f.api.timeout, Logger: s.log,
	}
	if f.send != nil {
		f.send.config(&s.cfg)
	}
	return s, nil
}

// newImporter returns the importer of the session's configuration, watched
// by the metrics.
func (s *session) newImporter() (*importer.Importer, error) {
	im, err := importer.New(s.pool, s.client, s.cfg)
	if err != nil {
		return nil, usageError(err)
	}
	s.met.watchImporter(im)
	s.met.watchRate(im)
	return im, nil
}

func (s *session) close() {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	s.met.close()
	if s.pool != nil {
		s.pool.Close()
	}
}

// databaseURL is the flag's value, else the environment's.
func (d *dbFlags) databaseURL() (url, from string) {
	if d.url != "" {
		return d.url, "--database-url"
	}
	return d.getenv(envDatabaseURL), envDatabaseURL
}

// connect opens a pool on the database.
func (d *dbFlags) connect(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	url, from := d.databaseURL()
	if url == "" {
		return nil, withHint(ExitUsage, fmt.Errorf("no database: set %s or --database-url", envDatabaseURL),
			"export DATABASE_URL=postgres://USER:PASSWORD@localhost:5432/kommo_import (docker compose up -d db starts one)")
	}
	pool, err := importer.Connect(ctx, url, maxConns)
	var badURL *importer.DatabaseURLError
	if errors.As(err, &badURL) {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return pool, err
}

// open connects and applies the embedded migrations (under an advisory lock,
// so concurrent processes are safe).
func (d *dbFlags) open(ctx context.Context, maxConns int32) (*pgxpool.Pool, error) {
	pool, err := d.connect(ctx, maxConns)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Apply(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// open returns the command's logger: on stderr and, with --log-file, on
// the file too. With a progress bar on the terminal, info lines are left
// out of stderr (the bar says the same) unless asked for, and every line
// goes through the bar's guard; the file has them all.
func (l *logFlags) open(stderr io.Writer, bar bool) (*slog.Logger, *logSinks, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, nil, usageError(fmt.Errorf("--log-level must be debug, info, warn or error, not %q", l.level))
	}
	if l.format != "text" && l.format != "json" {
		return nil, nil, usageError(fmt.Errorf("--log-format must be text or json, not %q", l.format))
	}
	sinks := &logSinks{json: l.format == "json"}
	termLevel := lv
	if bar && lv == slog.LevelInfo && l.level == "info" {
		termLevel = slog.LevelWarn
	}
	w := stderr
	if bar {
		sinks.guard = newLineGuard(stderr)
		w = sinks.guard.logWriter()
	}
	h := l.handler(w, termLevel)
	if l.file != "" {
		f, err := openLogFile(l.file)
		if err != nil {
			return nil, nil, err
		}
		sinks.file = f
		fh := l.handler(lockedWriter{&sinks.mu, f}, lv)
		sinks.fileL = slog.New(fh)
		h = slog.NewMultiHandler(h, fh)
	}
	return slog.New(h), sinks, nil
}

// lockedWriter serialises the log's records with the summary's lines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logOptions writes durations as seconds, in both formats: a key ending in
// _seconds and a number (slog's JSON would give nanoseconds without a unit).
func logOptions(lv slog.Level) *slog.HandlerOptions {
	return &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() != slog.KindDuration {
			return a
		}
		if !strings.HasSuffix(a.Key, "_seconds") {
			a.Key += "_seconds"
		}
		return slog.Float64(a.Key, seconds(a.Value.Duration()))
	}}
}

// seconds is d in seconds, to the millisecond.
func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

// readSecret reads the channel secret from --channel-secret-file or the
// environment. It is never accepted as a flag value: those show in ps. A
// file others may read is warned about, once.
func readSecret(env Env, file string, log *slog.Logger) (signer.Secret, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageError(fmt.Errorf("--channel-secret-file: %w", err))
		}
		if st, err := os.Stat(file); err == nil && st.Mode().Perm()&0o077 != 0 {
			log.Warn("the channel secret file is readable by group or others: chmod 600 "+shellQuote([]string{file}), "file", file, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
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

// client is the Chats API client of the flags, observed by met (nil: no
// metrics). It does not pace: the importer takes a slot for every attempt.
func (f *apiFlags) client(scope string, secret signer.Secret, met *metrics) (*chatsapi.Client, error) {
	c, err := chatsapi.New(chatsapi.Config{
		BaseURL: f.apiURL, ScopeID: scope, Secret: secret,
		Timeout: f.timeout, AllowInsecureHTTP: f.insecure,
		WrapTransport: met.wrapTransport,
	})
	if err != nil {
		return nil, usageError(err)
	}
	return c, nil
}
