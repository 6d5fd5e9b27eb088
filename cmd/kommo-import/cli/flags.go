package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/baseurl"
)

// Environment variables the commands read.
const (
	envDatabaseURL   = "DATABASE_URL"
	envAPIURL        = "KOMMO_API_URL"
	envScopeID       = "KOMMO_SCOPE_ID"
	envChannelSecret = "KOMMO_CHANNEL_SECRET"
	envSourceDSN     = "KOMMO_SOURCE_DSN"
)

// secretFlags are the flags whose values may hold a password, with the
// environment variable that can give the value instead. Their values are
// never printed: a command line in a hint names the variable.
var secretFlags = map[string]string{"database-url": envDatabaseURL, "source-dsn": envSourceDSN}

// newFlagSet returns a flag set for a subcommand whose --help prints the
// summary, the usage line and the flags to stdout.
func newFlagSet(env Env, name, usageLine, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kommo-import %s %s\n\n%s\n\nFlags:\n", name, usageLine, strings.TrimSpace(help))
		fs.PrintDefaults()
	}
	fs.String(configFlag, "", "read flags from the TOML `FILE`: each key a flag's name (source = \"csv:export.csv\", rate = 6,\n"+
		"map = {msgid = \"id\"}), a [COMMAND] table for one command's; flags given here override it; relative\n"+
		"paths are from the file's folder; secrets (the channel secret, tokens, passwords) stay in the environment")
	return fs
}

// parseFlags parses args into fs; --help prints usage to stdout and returns
// errHelp. A mistake gets one line saying which flag and why (an unknown
// flag with the nearest known one), and a pointer to --help: never the
// whole usage.
func parseFlags(fs *flag.FlagSet, env Env, args []string) error {
	if env.collect != nil {
		env.collect(fs)
		return errHelp
	}
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
	helpHint := "kommo-import " + fs.Name() + " --help lists its flags"
	if err := checkFlagNames(fs, args); err != nil {
		return withHint(ExitUsage, err, helpHint)
	}
	// Record which flag refused its value, to say so in our words; the
	// flag package's own message and usage dump go nowhere.
	var failed *flagFailure
	restore := map[string]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		restore[f.Name] = f.Value
		f.Value = &trackedValue{Value: f.Value, name: f.Name, failed: &failed}
	})
	out, usage := fs.Output(), fs.Usage
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = usage
	fs.VisitAll(func(f *flag.Flag) { f.Value = restore[f.Name] })
	if err != nil {
		if failed != nil {
			return withHint(ExitUsage, failed.error(), helpHint)
		}
		return withHint(ExitUsage, err, helpHint)
	}
	if fs.NArg() > 0 {
		return withHint(ExitUsage, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")), helpHint)
	}
	return applyConfig(fs, env)
}

// checkFlagNames walks args the way flag.Parse does and reports the first
// flag fs does not define (with a suggestion) or that lacks its value.
func checkFlagNames(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			return nil // the flags end here
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if name == "" || name[0] == '-' || name[0] == '=' {
			return fmt.Errorf("bad flag syntax: %s", a)
		}
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		if f == nil {
			if s := suggestFlag(fs, name); s != "" {
				return fmt.Errorf("unknown flag --%s: did you mean --%s?", name, s)
			}
			return fmt.Errorf("unknown flag --%s", name)
		}
		if isBoolFlag(f.Value) || hasValue {
			continue
		}
		if i+1 >= len(args) {
			return fmt.Errorf("--%s needs a value", name)
		}
		i++
	}
	return nil
}

// suggestFlag returns the defined flag nearest to name (by edit distance),
// or "" when none is near.
func suggestFlag(fs *flag.FlagSet, name string) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return nearest(name, names)
}

// nearest returns the candidate at the smallest edit distance from s, if it
// is at most 2 (and less than s is long); of those as near, one that starts
// like s ("sorce": source, not force), else the first in sorted order.
func nearest(s string, candidates []string) string {
	sort.Strings(candidates)
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(s, c)
		if d >= len(s) {
			continue
		}
		if d < bestD || (d == bestD && best != "" && best[0] != s[0] && c[0] == s[0]) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func isBoolFlag(v flag.Value) bool {
	b, ok := v.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagFailure is a flag that refused its value.
type flagFailure struct {
	name, value string
	err         error
}

func (f *flagFailure) error() error {
	if _, secret := secretFlags[f.name]; secret {
		return fmt.Errorf("--%s: %v", f.name, f.err)
	}
	return fmt.Errorf("--%s %s: %v", f.name, shellQuote([]string{f.value}), f.err)
}

// trackedValue records the flag whose Set fails.
type trackedValue struct {
	flag.Value
	name   string
	failed **flagFailure
}

func (v *trackedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && *v.failed == nil {
		if isBoolFlag(v.Value) {
			err = errors.New("want true or false")
		}
		*v.failed = &flagFailure{name: v.name, value: s, err: err}
	}
	return err
}

func (v *trackedValue) IsBoolFlag() bool { return isBoolFlag(v.Value) }

// intValue is an int flag with a range.
type intValue struct {
	p        *int
	min, max int
}

func intVar(fs *flag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	*p = def
	fs.Var(&intValue{p: p, min: lo, max: hi}, name, fmt.Sprintf("%s (%d to %d)", usage, lo, hi))
}

func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a whole number")
	}
	if n < v.min || n > v.max {
		return fmt.Errorf("must be %d to %d", v.min, v.max)
	}
	*v.p = n
	return nil
}

// durationValue is a duration flag with a range; min is inclusive unless
// it is 0 and zero is not allowed.
type durationValue struct {
	p        *time.Duration
	min, max time.Duration
	zeroOK   bool
}

func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def, lo, hi time.Duration, zeroOK bool, usage string) {
	*p = def
	v := &durationValue{p: p, min: lo, max: hi, zeroOK: zeroOK}
	fs.Var(v, name, fmt.Sprintf("%s (%s)", usage, v.rangeText()))
}

func (v *durationValue) rangeText() string {
	switch {
	case v.zeroOK && v.min == 0:
		return "0 to " + shortDuration(v.max)
	case v.min == 0:
		return "above 0, at most " + shortDuration(v.max)
	}
	return shortDuration(v.min) + " to " + shortDuration(v.max)
}

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return "0s"
	}
	return shortDuration(*v.p)
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (write it like 500ms, 30s, 5m or 1h)")
	}
	if d < v.min || d > v.max || (d == 0 && !v.zeroOK) {
		return fmt.Errorf("must be %s", v.rangeText())
	}
	*v.p = d
	return nil
}

// shortDuration prints 1h0m0s as 1h and 5m0s as 5m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// rateUnlimited is --rate unlimited, as importer.Config.Rate takes it.
const rateUnlimited = -1

// maxRate bounds --rate: far above any real account's limit, so a typo
// (50000 for 5) is refused rather than tried.
const maxRate = 1000

// rateValue is --rate: requests per second above 0, or "unlimited".
type rateValue struct{ p *float64 }

func (v *rateValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	if *v.p == rateUnlimited {
		return "unlimited"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v *rateValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "unlimited") {
		*v.p = rateUnlimited
		return nil
	}
	r, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return errors.New("not a number: give requests per second above 0 (Kommo allows at most 7), or unlimited against kommo-sim")
	case math.IsNaN(r) || math.IsInf(r, 0) || errors.Is(err, strconv.ErrRange):
		return errors.New("must be a finite number of requests per second")
	case r <= 0:
		return errors.New("must be above 0 (requests per second; Kommo allows at most 7), or unlimited against kommo-sim")
	case r > maxRate:
		return fmt.Errorf("must be at most %d requests per second (Kommo allows 7)", maxRate)
	}
	*v.p = r
	return nil
}

// dbFlags are the flags of every command that opens the database.
type dbFlags struct {
	url    string
	getenv func(string) string
}

func (d *dbFlags) register(fs *flag.FlagSet, env Env) {
	// The environment's value is not the flag's default: --help would print it, password and all.
	fs.StringVar(&d.url, "database-url", "", "PostgreSQL `URL` for checkpoints; default: env "+envDatabaseURL+" (a command printed for you names the variable, never the URL)")
	d.getenv = env.Getenv
}

// logFlags choose the log format of stderr, and a file the log goes to as well.
type logFlags struct {
	format string
	level  string
	file   string
}

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format on stderr (and --log-file): text or json (json: every line on stderr is a JSON object)")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.file, "log-file", "", "append the log to `FILE` as well (created 0600), at --log-level even under a progress bar, with the summary\n"+
		"and the exit lines: a run's whole story without a pipe (a pipe's reader that dies with Ctrl-C loses the end)")
}

// apiFlags are the Chats API flags that run, retry and verify share, under
// the same names, defaults and environment variables.
type apiFlags struct {
	metrics    metricsFlags
	scopeID    string
	apiURL     string
	secretFile string
	rate       float64
	timeout    time.Duration
	insecure   bool
}

func (f *apiFlags) register(fs *flag.FlagSet, env Env) {
	f.metrics.register(fs)
	fs.StringVar(&f.scopeID, "scope-id", env.Getenv(envScopeID), "the channel's scope_id (env "+envScopeID+"); for retry and verify it defaults to the run's, and must match it")
	fs.StringVar(&f.apiURL, "api-url", orDefault(env.Getenv(envAPIURL), chatsapi.DefaultBaseURL), "Chats API base URL (env "+envAPIURL+"); kommo-sim's URL for a rehearsal")
	fs.StringVar(&f.secretFile, "channel-secret-file", "", "read the channel secret from this `FILE` (mode 600) instead of env "+envChannelSecret)
	f.rate = importer.DefaultRate
	fs.Var(&rateValue{p: &f.rate}, "rate", "`requests/s` for the whole scope, every process together, look-ups and retries included:\n"+
		fmt.Sprintf("above 0, at most %d (Kommo allows 7; above 7 warns); unlimited: no limit, only with an --api-url on this machine (kommo-sim)", maxRate))
	durationVar(fs, &f.timeout, "request-timeout", 30*time.Second, 100*time.Millisecond, 10*time.Minute, false, "time limit (`DURATION`) of one HTTP request, body included")
	fs.BoolVar(&f.insecure, "insecure-allow-plain-http", false, "DANGEROUS: allow --api-url with plain http to a non-loopback host (the secret-signed requests travel unencrypted)")
}

// check validates what the flags cannot check one at a time.
func (f *apiFlags) check() error {
	if f.rate == rateUnlimited && !baseurl.IsLoopback(f.apiURL) {
		return withHint(ExitUsage, fmt.Errorf("--rate unlimited is only for a Chats API on this machine (kommo-sim), not %s", f.apiURL),
			"give --rate 5 (Kommo allows at most 7 requests/s): past the limit, Kommo answers 429 and blocks accounts that keep on")
	}
	return nil
}

// sendFlags are the flags of the commands that send messages (run, retry).
type sendFlags struct {
	onFailure   string
	workers     int
	reconcile   time.Duration
	maxAttempts int
	progress    string
	interval    time.Duration
	dbOutage    time.Duration
	media       mediaFlags // media.go
}

func (s *sendFlags) register(fs *flag.FlagSet) {
	intVar(fs, &s.workers, "workers", importer.DefaultWorkers, 1, 256, "at most `N` conversations sent at once by this process: the pool sizes itself\n"+
		"to the rate and the round trips it measures (rate x cycle time), up to N")
	durationVar(fs, &s.reconcile, "reconcile-wait", importer.DefaultReconcileWait, 100*time.Millisecond, time.Hour, false,
		"how long (`DURATION`) to wait after a request whose fate is unknown, for the API's asynchronous processing, before looking the message up in history")
	intVar(fs, &s.maxAttempts, "max-attempts", importer.DefaultMaxAttempts, 1, 100, "stop the run as interrupted after `N` failed attempts in a row at one message (5xx, network errors)")
	fs.Func("on-failure", "what a message the API refuses for good does to the rest of its conversation:\n"+
		"hold (default): they wait, and retry sends it and then them, in order (the run ends with exit 3);\n"+
		"continue: they are sent without it, out of order once it is retried", func(v string) error {
		switch v {
		case importer.OnFailureHold, importer.OnFailureContinue:
			s.onFailure = v
			return nil
		}
		return fmt.Errorf("want hold or continue, got %q", v)
	})
	fs.StringVar(&s.progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal, log lines otherwise or with --log-format json), bar, log or none")
	durationVar(fs, &s.interval, "progress-interval", 10*time.Second, 100*time.Millisecond, time.Hour, false, "`DURATION` between progress log lines")
	durationVar(fs, &s.dbOutage, "db-outage-limit", importer.DefaultDBOutageLimit, time.Second, 24*time.Hour, false, "how long (`DURATION`) sending waits for a lost database before the run stops as interrupted")
	s.media.register(fs)
}

func (s *sendFlags) check() error {
	switch s.progress {
	case "auto", "bar", "log", "none":
		return nil
	}
	return usageError(fmt.Errorf("--progress must be auto, bar, log or none, not %q", s.progress))
}

// wantsBar says whether progress is a bar (else log lines or nothing): auto
// draws one on a terminal, unless the logs are JSON (every line on stderr
// is a JSON object then; progress comes as log lines).
func (s *sendFlags) wantsBar(env Env, jsonLogs bool) bool {
	return s.progress == "bar" || (s.progress == "auto" && !jsonLogs && isTerminal(env.Stderr))
}

// config puts the sending flags in an importer configuration.
func (s *sendFlags) config(cfg *importer.Config) {
	cfg.Workers = s.workers
	cfg.ReconcileWait = s.reconcile
	cfg.MaxAttempts = s.maxAttempts
	cfg.DBOutageLimit = s.dbOutage
	cfg.OnFailure = s.onFailure
}

// notifyHelp explains --notify.
const notifyHelp = "which message of each conversation is loud (creates the incoming lead and the notification; the others are silent):\n" +
	"newest: the newest message, as Kommo advises, even when it is a manager's reply;\n" +
	"newest-incoming: the newest message from the client (later replies of yours stay silent): for exports whose chats often end with your reply;\n" +
	"none: every message silent (no leads, no notifications)"
