package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
)

// --config FILE: a TOML file whose keys are the flags' names, for the
// commands whose command lines grow long (a run with --map, --users, --tz
// and a subset is some 250 characters, and its resume command with it).
//
//	source = "csv:export.csv"      # relative paths: from the file's folder
//	users  = "users.csv"
//	tz     = "Europe/Berlin"
//	map    = { msgid = "message_id", conversation_id = "chat" }
//	rate   = 6
//
//	[run]                           # only for run: overrides the keys above
//	workers = 16
//
// Every flag of every command is a key, under its own name; a key another
// command has is left alone by this one (one file serves validate, run,
// status and report). Flags on the command line override the file. Secrets
// stay in the environment: the file may not hold the channel secret, a
// token or a password. An unknown key is refused, with the nearest one.

// configFlag is the flag every command has.
const configFlag = "config"

// keyKind says how a config key's value is taken.
type keyKind int

const (
	keyPlain      keyKind = iota
	keyPath               // a file: relative to the config file's folder
	keySource             // --source: KIND:PATH, the path relative to the config file's folder
	keyNoPassword         // a connection string: refused when it holds a password
	keyNotInFile          // config, help: never in a file
)

// configKeys classifies every flag of every command as a config key. A
// flag missing here is still a key (keyPlain); TestEveryFlagHasAConfigKey
// fails for it, so that whoever adds a flag decides whether it is a path.
var configKeys = map[string]keyKind{
	configFlag: keyNotInFile,

	"source": keySource, "source-dsn": keyNoPassword, "source-query": keyPlain, "source-table": keyPlain,
	"map": keyPlain, "ignore-columns": keyPlain, "strict": keyPlain, "tz": keyPlain, "time-format": keyPlain,
	"date-order": keyPlain, "self": keyPlain, "media-missing": keyPlain,
	"conversation": keyPlain, "conversations": keyPath, "since": keyPlain, "until": keyPlain, "limit-conversations": keyPlain,
	"users": keyPath, "kommo-domain": keyPlain, "bot-id": keyPlain,

	"database-url": keyNoPassword, "log-format": keyPlain, "log-level": keyPlain, "log-file": keyPath,
	"metrics-addr": keyPlain, "metrics-textfile": keyPath, "metrics-push": keyNoPassword, "metrics-interval": keyPlain,
	"scope-id": keyPlain, "api-url": keyPlain, "channel-secret-file": keyPath, "rate": keyPlain,
	"request-timeout": keyPlain, "insecure-allow-plain-http": keyPlain,
	"workers": keyPlain, "reconcile-wait": keyPlain, "max-attempts": keyPlain, "progress": keyPlain,
	"progress-interval": keyPlain, "db-outage-limit": keyPlain,

	"run": keyPlain, "stage-batch": keyPlain, "notify": keyPlain, "allow-empty": keyPlain, "json": keyPlain,
	"rejects": keyPath, "sample": keyPlain, "format": keyPlain, "output": keyPath, "force": keyPlain, "sent": keyPlain, "contacts": keyPlain,
	"channel-id": keyPlain, "account-id": keyPlain, "title": keyPlain, "env-file": keyPath, "dry-run": keyPlain,
	"on-failure": keyPlain, "msgid": keyPlain, "skip": keyPlain, "out": keyPath,
	"max-rejects": keyPlain, "older": keyPlain, "resume": keyPlain, "mark": keyPlain, "repair": keyPlain,
	"media-store": keyPlain, "media-endpoint": keyPlain, "media-addressing": keyPlain, "media-region": keyPlain, "media-profile": keyPlain,
	"media-public-base": keyPlain, "media-base-url": keyPlain, "media-url-ttl": keyPlain, "media-uploads": keyPlain,
	"media-max-size": keyPlain, "link-contacts": keyPlain, "create-contacts": keyPlain, "contacts-map": keyPath, "default-region": keyPlain, "crm-rate": keyPlain,
}

// secretKey matches keys that name a secret: never in a file, whatever the
// command (a typo of one would land a secret in a file too).
var secretKey = regexp.MustCompile(`(?i)(secret|token|passw)`)

// secretKeyOK are the keys secretKey matches that hold no secret.
var secretKeyOK = map[string]bool{"channel-secret-file": true}

// errConfig is a config file's mistake: exit 2, naming the file and key.
func errConfig(file, key, format string, args ...any) error {
	where := file
	if key != "" {
		where += ": " + key
	}
	return usageError(fmt.Errorf("--config %s: %s", where, fmt.Sprintf(format, args...)))
}

// applyConfig sets the flags of fs that the command line left unset from
// the config file fs's --config names, if any.
func applyConfig(fs *flag.FlagSet, env Env) error {
	cf := fs.Lookup(configFlag)
	if cf == nil || cf.Value.String() == "" {
		return nil
	}
	file := cf.Value.String()
	var doc map[string]any
	_, err := toml.DecodeFile(file, &doc)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return errConfig(file, "", "line %d: %s", perr.Position.Line, perr.Message)
		}
		return errConfig(file, "", "%v", err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return errConfig(file, "", "%v", err)
	}
	command, _, _ := strings.Cut(fs.Name(), " ") // "runs abandon" reads [runs]
	known := allConfigKeys()
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	// The keys for this command: the top level's it has, then its section's.
	values := map[string]any{}
	for _, k := range sortedMapKeys(doc) {
		v := doc[k]
		if sec, ok := v.(map[string]any); ok && known.commands[k] {
			for _, sk := range sortedMapKeys(sec) {
				if err := checkKey(file, k+"."+sk, sk, sec[sk]); err != nil {
					return err
				}
				if !slices.Contains(known.byCommand[k], sk) {
					return errConfig(file, k+"."+sk, "kommo-import %s has no such flag%s", k, didYouMean(sk, known.byCommand[k]))
				}
			}
			continue
		}
		if err := checkKey(file, k, k, v); err != nil {
			return err
		}
		if !known.flags[k] {
			return errConfig(file, k, "unknown key%s", didYouMean(k, known.names()))
		}
		if fs.Lookup(k) != nil {
			values[k] = v
		}
	}
	if sec, ok := doc[command].(map[string]any); ok {
		for k, v := range sec {
			values[k] = v
		}
	}
	for _, k := range sortedMapKeys(values) {
		if onCommandLine[k] {
			continue // the command line overrides the file
		}
		strs, err := configStrings(values[k])
		if err != nil {
			return errConfig(file, k, "%v", err)
		}
		for _, s := range strs {
			s = resolvePath(configKeys[k], s, dir)
			if err := fs.Set(k, s); err != nil {
				if _, secret := secretFlags[k]; secret {
					return errConfig(file, k, "%v", err)
				}
				return errConfig(file, k, "%s: %v", shellQuote([]string{s}), err)
			}
		}
	}
	return nil
}

// checkKey refuses what may never be in a file: secrets, a password in a
// connection string, another --config.
func checkKey(file, where, key string, v any) error {
	if secretKey.MatchString(key) && !secretKeyOK[key] {
		return errConfig(file, where, "secrets stay out of files: give the channel secret in env %s or --channel-secret-file, "+
			"a Kommo token in env %s, a password in the environment (%s, %s, PGPASSWORD) or ~/.pgpass",
			envChannelSecret, envKommoToken, envDatabaseURL, envSourceDSN)
	}
	switch configKeys[key] {
	case keyNotInFile:
		return errConfig(file, where, "a config file cannot name another (or itself): give --%s on the command line", key)
	case keyNoPassword:
		if s, ok := v.(string); ok && holdsPassword(s) {
			hint := "env " + envDatabaseURL
			if key == "source-dsn" {
				hint = "env " + envSourceDSN
			} else if key == "metrics-push" {
				hint = "env " + envPushPassword
			}
			return errConfig(file, where, "holds a password, which stays out of files: put the password in %s, PGPASSWORD or ~/.pgpass", hint)
		}
	}
	return nil
}

// holdsPassword reports whether a connection string (URL or keyword=value)
// carries a password.
func holdsPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	if u, err := url.Parse(s); err == nil && u.Query().Has("password") {
		return true
	}
	return regexp.MustCompile(`(?i)(^|\s)password\s*=`).MatchString(s)
}

// resolvePath makes a relative path of the file relative to its folder.
func resolvePath(kind keyKind, s, dir string) string {
	switch kind {
	case keyPath:
		if s != "" && s != "-" && !filepath.IsAbs(s) {
			return filepath.Join(dir, s)
		}
	case keySource:
		if kind, path, ok := strings.Cut(s, ":"); ok && len(kind) > 1 {
			if path != "" && path != "-" && !filepath.IsAbs(path) {
				return kind + ":" + filepath.Join(dir, path)
			}
			return s
		}
		if s != sourcesKindPostgres && s != "-" && !filepath.IsAbs(s) {
			return filepath.Join(dir, s)
		}
	}
	return s
}

const sourcesKindPostgres = "postgres"

// configStrings turns a TOML value into the flag values it stands for: an
// array is the flag given once per element; a table (map = {msgid =
// "id"}) is one canonical=theirs value per key.
func configStrings(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case bool:
		return []string{strconv.FormatBool(v)}, nil
	case int64:
		return []string{strconv.FormatInt(v, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(v, 'g', -1, 64)}, nil
	case time.Time:
		switch v.Location().String() {
		case "date-local":
			return []string{v.Format("2006-01-02")}, nil
		case "datetime-local":
			return nil, errors.New("a date and time without a zone: write it as RFC 3339 (2024-03-01T09:00:00+01:00) or a date")
		}
		return []string{v.Format(time.RFC3339Nano)}, nil
	case []any:
		var out []string
		for _, e := range v {
			s, err := configStrings(e)
			if err != nil {
				return nil, err
			}
			if len(s) != 1 {
				return nil, errors.New("an array inside an array")
			}
			out = append(out, s...)
		}
		return out, nil
	case map[string]any:
		var out []string
		for _, k := range sortedMapKeys(v) {
			s, ok := v[k].(string)
			if !ok {
				return nil, fmt.Errorf("%s: want a string", k)
			}
			out = append(out, k+"="+s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("a value of type %T", v)
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func didYouMean(s string, candidates []string) string {
	if n := nearest(s, candidates); n != "" {
		return ": did you mean " + n + "?"
	}
	return ""
}

// knownKeys are the flags of every command and the commands' names.
type knownKeys struct {
	flags     map[string]bool
	commands  map[string]bool
	byCommand map[string][]string // "runs": the flags of runs, runs abandon, runs delete and runs ack
}

func (k knownKeys) names() []string {
	var out []string
	for f := range k.flags {
		if configKeys[f] != keyNotInFile {
			out = append(out, f)
		}
	}
	for c := range k.commands {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

var (
	knownOnce sync.Once
	known     knownKeys
)

// allConfigKeys derives the keys from the commands' own flag sets, so that
// none is forgotten: each command is asked for --help with a collector in
// its Env, which parseFlags hands the complete flag set.
func allConfigKeys() knownKeys {
	knownOnce.Do(func() {
		known = knownKeys{flags: map[string]bool{}, commands: map[string]bool{}, byCommand: map[string][]string{}}
		for _, fs := range commandFlagSets() {
			c, _, _ := strings.Cut(fs.Name(), " ")
			known.commands[c] = true
			fs.VisitAll(func(f *flag.Flag) {
				known.flags[f.Name] = true
				if configKeys[f.Name] != keyNotInFile && !slices.Contains(known.byCommand[c], f.Name) {
					known.byCommand[c] = append(known.byCommand[c], f.Name)
				}
			})
		}
	})
	return known
}

// commandFlagSets returns the flag set of every command and subcommand,
// as each builds it.
func commandFlagSets() []*flag.FlagSet {
	var sets []*flag.FlagSet
	collect := func(fs *flag.FlagSet) { sets = append(sets, fs) }
	env := Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, collect: collect}
	stop := &stopper{first: make(chan os.Signal), soft: make(chan struct{})}
	for _, c := range commands() {
		inv := &invocation{env: env, stop: stop, facts: invocationFacts{command: c.name}}
		_ = c.run(context.Background(), inv, []string{"--help"})
		if c.name == "runs" {
			for _, sub := range []string{"abandon", "delete", "ack"} {
				_ = c.run(context.Background(), inv, []string{sub, "--help"})
			}
		}
	}
	return sets
}
