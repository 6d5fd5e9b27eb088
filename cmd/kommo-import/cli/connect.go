package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
)

// envKommoToken holds a long-lived token of Kommo's main API (v4). Like the
// channel secret it is never taken as a flag value: those show in ps.
const envKommoToken = "KOMMO_TOKEN"

const connectHelp = `
Connect the channel (registered with Kommo support, which issued its channel
id and secret) to a Kommo account, and print the scope_id that run needs:
alone on stdout, so SCOPE=$(kommo-import connect ...) works; what happened
goes to stderr. Connecting again is harmless and gives the same scope_id.

The account is named by its amojo_id (a UUID, not the numeric account id).
Give it with --account-id, or let connect look it up: --kommo-domain and an
admin's long-lived token in env KOMMO_TOKEN (from a private integration in
Kommo, "Keys and scopes").

The channel secret is read from the environment (KOMMO_CHANNEL_SECRET) or from
--channel-secret-file, never from a flag value. --env-file writes
KOMMO_SCOPE_ID=... into a file (replacing an older value), never the secret.

Examples:
  kommo-import connect --channel-id "$CHANNEL_ID" --account-id af9945ff-1490-4cad-807d-945c15d88bec
  KOMMO_TOKEN=... kommo-import connect --channel-id "$CHANNEL_ID" --kommo-domain mycompany.kommo.com --env-file .env
  export KOMMO_SCOPE_ID=$(kommo-import connect --channel-id "$CHANNEL_ID" --account-id "$AMOJO_ID")`

type connectFlags struct {
	channelID   string
	accountID   string
	title       string
	envFile     string
	kommoDomain string
	apiURL      string
	secretFile  string
	timeout     time.Duration
	insecure    bool
	jsonOut     bool
}

// connectResult is the --json output.
type connectResult struct {
	ScopeID        string `json:"scope_id"`
	ChannelID      string `json:"channel_id"`
	AccountID      string `json:"account_id"`
	Title          string `json:"title,omitempty"`
	HookAPIVersion string `json:"hook_api_version,omitempty"`
	EnvFile        string `json:"env_file,omitempty"`
}

func runConnect(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "connect", "--channel-id ID (--account-id AMOJO_ID | --kommo-domain DOMAIN) [flags]", connectHelp)
	var f connectFlags
	fs.StringVar(&f.channelID, "channel-id", "", "the channel's `ID`, issued by Kommo support with the channel's secret")
	fs.StringVar(&f.accountID, "account-id", "", "the account's `AMOJO_ID` (a UUID); omit it to look it up with --kommo-domain")
	fs.StringVar(&f.title, "title", "", "the channel's title in this account; default: the name it was registered with")
	fs.StringVar(&f.envFile, "env-file", "", "also write KOMMO_SCOPE_ID=... into this `FILE` (created 0600 if missing; an older value is replaced, other lines kept;\n"+
		"replaced whole by a rename, through a symbolic link its target; a read-only file is refused)")
	fs.StringVar(&f.kommoDomain, "kommo-domain", "", "`SUBDOMAIN.kommo.com` of the account, to look its amojo_id up (/api/v4/account?with=amojo_id)\n"+
		"with an admin's long-lived token from env "+envKommoToken)
	fs.StringVar(&f.apiURL, "api-url", orDefault(env.Getenv(envAPIURL), chatsapi.DefaultBaseURL), "Chats API base URL (env "+envAPIURL+"); kommo-sim's URL for a rehearsal")
	fs.StringVar(&f.secretFile, "channel-secret-file", "", "read the channel secret from this `FILE` (mode 600) instead of env "+envChannelSecret)
	durationVar(fs, &f.timeout, "request-timeout", 30*time.Second, 100*time.Millisecond, 10*time.Minute, false, "time limit (`DURATION`) of one HTTP request")
	fs.BoolVar(&f.insecure, "insecure-allow-plain-http", false, "DANGEROUS: allow --api-url with plain http to a non-loopback host (the secret-signed request travels unencrypted)")
	fs.BoolVar(&f.jsonOut, "json", false, "print {scope_id, channel_id, account_id, title, hook_api_version, env_file} as JSON on stdout")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if f.channelID = strings.TrimSpace(f.channelID); f.channelID == "" {
		return withHint(ExitUsage, errors.New("connect: --channel-id is required"),
			"the channel id comes with the channel registration from Kommo support, together with its secret")
	}
	f.accountID = strings.TrimSpace(f.accountID)
	if f.accountID == "" && f.kommoDomain == "" {
		return withHint(ExitUsage, errors.New("connect: give --account-id AMOJO_ID, or --kommo-domain to look it up"),
			"KOMMO_TOKEN=<long-lived token> kommo-import connect --channel-id "+shellQuote([]string{f.channelID})+" --kommo-domain mycompany.kommo.com")
	}
	if f.accountID != "" && strings.Trim(f.accountID, "0123456789") == "" {
		return withHint(ExitUsage, fmt.Errorf("connect: --account-id %s looks like the numeric account id; connect needs the account's amojo_id (a UUID)", f.accountID),
			"leave --account-id out and give --kommo-domain with KOMMO_TOKEN: connect looks the amojo_id up")
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, logOptions(slog.LevelWarn)))
	secret, err := readSecret(env, f.secretFile, log)
	if err != nil {
		return err
	}
	client, err := chatsapi.New(chatsapi.Config{BaseURL: f.apiURL, Secret: secret, Timeout: f.timeout, AllowInsecureHTTP: f.insecure})
	if err != nil {
		return usageError(fmt.Errorf("connect: %w", err))
	}
	defer client.CloseIdleConnections()

	if f.accountID == "" {
		kc, err := newKommoAPI(env, f.kommoDomain, f.timeout)
		if err != nil {
			return err
		}
		acc, err := readKommo(ctx, env, kc.Account)
		kc.CloseIdleConnections()
		if err != nil {
			return kommoAPIError(err, f.kommoDomain)
		}
		f.accountID = acc.AmojoID
		fmt.Fprintf(env.Stderr, "account %s (%s, id %d): amojo_id %s\n", acc.Subdomain, acc.Name, acc.ID, acc.AmojoID)
	}

	conn, err := client.Connect(ctx, f.channelID, f.accountID, f.title)
	if err != nil {
		return connectError(err, f)
	}
	res := connectResult{ScopeID: conn.ScopeID, ChannelID: f.channelID, AccountID: f.accountID,
		Title: conn.Title, HookAPIVersion: conn.HookAPIVersion}
	if f.envFile != "" {
		if err := setEnvVar(f.envFile, envScopeID, conn.ScopeID); err != nil {
			return withHint(ExitFatal, fmt.Errorf("connect: --env-file: %w", err),
				"the channel is connected; set "+envScopeID+"="+conn.ScopeID+" by hand, or fix the file and connect again")
		}
		res.EnvFile = f.envFile
	}
	fmt.Fprintf(env.Stderr, "connected channel %s to account %s; its scope_id is %s\n", f.channelID, f.accountID, conn.ScopeID)
	if f.envFile != "" {
		fmt.Fprintf(env.Stderr, "wrote %s to %s\n", envScopeID, f.envFile)
	} else {
		fmt.Fprintf(env.Stderr, "next: export %s=%s\n", envScopeID, shellQuote([]string{conn.ScopeID}))
	}
	if f.jsonOut {
		return writeJSON(env.Stdout, res)
	}
	_, err = fmt.Fprintln(env.Stdout, conn.ScopeID)
	return err
}

// connectError turns a failed connect into an exit code and a hint.
func connectError(err error, f connectFlags) error {
	e, ok := chatsapi.AsError(err)
	if !ok {
		return fmt.Errorf("connect: %w", err)
	}
	switch {
	case e.Status == http.StatusNotFound:
		return withHint(ExitUsage, err, fmt.Sprintf("the channel id %q is wrong or the channel is not registered at %s: "+
			"check --channel-id against the registration from Kommo support, and --api-url", f.channelID, f.apiURL))
	case e.Kind == chatsapi.KindBadSignature:
		return withHint(ExitOperator, err, "the channel secret does not belong to this channel (check "+envChannelSecret+
			" or --channel-secret-file), or this machine's clock is off (compare date -u with the API's Date)")
	case e.Kind == chatsapi.KindBlocked:
		return withHint(ExitOperator, err, "the API refused the channel or this account: ask Kommo support whether the account is allowed for the channel and not blocked")
	case e.Kind == chatsapi.KindRateLimited:
		return withHint(ExitFatal, err, fmt.Sprintf("wait %s and connect again", max(e.RetryAfter, time.Second).Round(time.Second)))
	case e.Status == http.StatusBadRequest:
		return withHint(ExitUsage, err, "check that --account-id is the account's amojo_id (a UUID; --kommo-domain with "+envKommoToken+" looks it up)")
	case e.Retryable():
		return withHint(ExitFatal, err, "could not reach the Chats API at "+f.apiURL+": check --api-url and the network, then connect again (it is safe to repeat)")
	}
	return err
}

// newKommoAPI returns a client of the account's main API, with the token
// from the environment.
func newKommoAPI(env Env, domain string, timeout time.Duration) (*kommoapi.Client, error) {
	base, err := kommoapi.BaseURL(domain)
	if err != nil {
		return nil, withHint(ExitUsage, fmt.Errorf("--kommo-domain: %w", err), "give the address you log in at, e.g. --kommo-domain mycompany.kommo.com")
	}
	token := strings.TrimSpace(env.Getenv(envKommoToken))
	if token == "" {
		return nil, withHint(ExitUsage, errors.New("--kommo-domain needs a token: set "+envKommoToken),
			"create a private integration in Kommo, generate a long-lived token under \"Keys and scopes\" (as an admin), and export "+envKommoToken+"; never pass it as a flag value")
	}
	c, err := kommoapi.New(kommoapi.Config{BaseURL: base, Token: signer.Secret(token), Timeout: timeout})
	if err != nil {
		return nil, usageError(fmt.Errorf("--kommo-domain: %w", err))
	}
	return c, nil
}

// kommoAPIError turns a failed main-API call into an exit code and a hint.
func kommoAPIError(err error, domain string) error {
	e, ok := kommoapi.AsError(err)
	switch {
	case !ok:
		return err
	case e.Unauthorized():
		return withHint(ExitUsage, err, envKommoToken+" was refused: it is wrong, expired or revoked; generate a new long-lived token in Kommo and export it")
	case e.Forbidden():
		return withHint(ExitUsage, err, "the token's user may not do this: listing users needs an admin's token")
	case e.Status == http.StatusNotFound || e.Status/100 == 3:
		return withHint(ExitUsage, err, "check --kommo-domain "+domain+": it is the address you log in at, e.g. mycompany.kommo.com")
	case e.Status == 0:
		return withHint(ExitFatal, err, "could not reach "+domain+": check --kommo-domain and the network, then try again")
	}
	return withHint(ExitFatal, err, "try again later; or give the values by hand (--account-id, --users FILE)")
}

// Reads of the main API the commands make once at their start (the
// account, its users) wait out a short 429 or a passing 5xx rather than
// fail: the operator's other integrations share the account's 7 requests a
// second, and a plan or another process may have just spent them.
const (
	kommoReadAttempts = 5
	kommoReadMaxWait  = 2 * time.Minute // a longer retry_after is the operator's to wait for
)

// readKommo makes read, trying again after a 429 (its retry_after, up to
// kommoReadMaxWait) or a 5xx (1 s, 2 s, 4 s ...), kommoReadAttempts times
// in all; each wait is said on stderr.
func readKommo[T any](ctx context.Context, env Env, read func(context.Context) (T, error)) (T, error) {
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		v, err := read(ctx)
		e, ok := kommoapi.AsError(err)
		if err == nil || !ok || attempt == kommoReadAttempts {
			return v, err
		}
		var wait time.Duration
		switch {
		case e.RateLimited() && e.RetryAfter <= kommoReadMaxWait:
			wait = e.RetryAfter
		case e.Status/100 == 5:
			wait, backoff = backoff, 2*backoff
		default:
			return v, err
		}
		fmt.Fprintf(env.Stderr, "%v; trying again in %s\n", err, wait)
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
	}
}

// loadUserMap builds the agent-to-Kommo-user map run and validate put in
// their source spec, or nil when no flag asked for one: the --users file
// first (the operator's explicit word), then the account's users by email.
func loadUserMap(ctx context.Context, env Env, f userFlags) (*sources.UserMap, error) {
	if !f.Enabled() {
		return nil, nil
	}
	m := sources.NewUserMap()
	m.SetBotID(f.BotID)
	if f.File != "" {
		if err := m.Load(f.File); err != nil {
			return nil, withHint(ExitUsage, fmt.Errorf("--users: %w", err), "kommo-import run --help describes the file; testdata/users.csv is an example")
		}
	}
	if f.KommoDomain != "" {
		kc, err := newKommoAPI(env, f.KommoDomain, 30*time.Second)
		if err != nil {
			return nil, err
		}
		defer kc.CloseIdleConnections()
		users, err := readKommo(ctx, env, kc.Users)
		if err != nil {
			return nil, kommoAPIError(err, f.KommoDomain)
		}
		for _, u := range users {
			m.AddKommoUser(u.Email, u.Name, u.AmojoID)
		}
	}
	return m, nil
}

// printUnmatched lists the agents that matched no Kommo user.
func printUnmatched(w io.Writer, agents []sources.UnmatchedAgent, botID string) {
	if len(agents) == 0 {
		return
	}
	if botID != "" {
		fmt.Fprintf(w, "agents matching no Kommo user (%d), their messages sent as the bot %s:\n", len(agents), botID)
	} else {
		fmt.Fprintf(w, "agents matching no Kommo user (%d), their messages rejected (add them to --users or use --bot-id):\n", len(agents))
	}
	for _, a := range agents {
		who := a.Name
		if a.Email != "" {
			who += " <" + a.Email + ">"
		}
		fmt.Fprintf(w, "  %-20s %-40s %s, first at line %d\n", a.ID, who, nouns(a.Messages, "message", "messages"), a.FirstLine)
	}
}

var envAssign = regexp.MustCompile(`^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=`)

// setEnvVar sets key=value in the env file at path: the first line that
// assigns key (with or without "export") is replaced and any later ones
// dropped, else the line is appended; every other line stays as it was. The
// file is replaced whole by a rename (createAtomic), so a crash never leaves
// it half written; through a symbolic link its target is; a new file is
// created 0600, since env files tend to gather secrets.
func setEnvVar(path, key, value string) error {
	f, err := createAtomic(path, true, 0o600)
	if err != nil {
		return err
	}
	defer f.abort()
	var old []byte
	if f.old != nil {
		if old, err = os.ReadFile(f.target); err != nil {
			return err
		}
	}
	line := key + "=" + shellQuote([]string{value})
	var out bytes.Buffer
	done := false
	for _, l := range strings.SplitAfter(string(old), "\n") {
		if l == "" {
			continue
		}
		if m := envAssign.FindStringSubmatch(l); m != nil && m[1] == key {
			if !done {
				out.WriteString(line + "\n")
				done = true
			}
			continue
		}
		out.WriteString(l)
	}
	if !done {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.WriteString(line + "\n")
	}
	if _, err := f.Write(out.Bytes()); err != nil {
		return err
	}
	return f.commit()
}
