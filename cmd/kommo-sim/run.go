package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/signer"
)

// EnvSecret is the only place the channel secret is read from: a flag would
// leave it in shell history and process listings.
const EnvSecret = "KOMMO_CHANNEL_SECRET"

// EnvScopeID is the scope id's fallback, shared with kommo-import.
const EnvScopeID = "KOMMO_SCOPE_ID"

// EnvToken is the account's admin token of the main API (/api/v4/), shared
// with kommo-import (or --token-file): never a flag value.
const EnvToken = "KOMMO_TOKEN"

var errUsage = errors.New("usage")

type usageErr struct{ msg string }

func (e usageErr) Error() string        { return e.msg + " (see kommo-sim --help)" }
func (e usageErr) Is(target error) bool { return target == errUsage }

const helpText = `kommo-sim: a local stand-in for the Kommo Chats API ("amojo"), and for the
part of Kommo's main API (v4) that links imported chats to contacts.

It serves the endpoints a history import uses, as Kommo documents them, and is
strict about them: every request must be signed with the channel secret
(Date, Content-Type: application/json, Content-MD5, X-Signature), or it gets the
documented 403 ORIGIN_INVALID_SIGNATURE; payloads are checked field by field
(400 INVALID_DATA naming the field); requests over the rate limit get the
documented 429 with Retry-After. It never contacts Kommo.

  POST /v2/origin/custom/{scope_id}                         new_message (import a message)
  POST /v2/origin/custom/{scope_id}/chats                   create chat (idempotent per conversation_id)
  GET  /v2/origin/custom/{scope_id}/chats/{chat_id}/history?offset=N&limit=M   (limit <= 50; 204 if none)
  POST /v2/origin/custom/{channel_id}/connect               connect (answers with --scope-id)

The main API (v4) on the same address, for --kommo-domain http://127.0.0.1:PORT,
with the account's admin token as "Authorization: Bearer" (env KOMMO_TOKEN or
--token-file; any other token gets 401, and with neither every request does):
  GET  /api/v4/account?with=amojo_id      the account (amojo_id: the --scope-id part after '_')
  GET  /api/v4/users?with=amojo_id        the --crm-users (250 a page)
  GET  /api/v4/contacts?query=Q&limit=250&page=N   Kommo's loose search: Q anywhere in any
                                          field, case aside, phones as written ("+7..." is not
                                          "8..."; all-digit Q also within a value's digits);
                                          204 when nothing matches; _links.next while more remain
  POST /api/v4/contacts                   create contacts (a batch of up to 250; request_id echoed)
  POST /api/v4/contacts/chats             link chats to contacts ([{chat_id, contact_id}]; a chat
                                          has one contact: another replaces the link)
  GET  /api/v4/contacts/chats?chat_id=ID  a chat's link (204 when none)
Linking is refused (403) with --crm-token-no-link: the token of an integration
that is not the chat channel's own. The main API has its own rate limit
(--crm-rate, 429 with retry_after of --crm-retry-after) and faults of its own in
the contact and link calls (--crm-faults: 500 and 503 before a request is
carried out, accept-500 and accept-drop after it: a contact created or a chat
linked, and the answer lost).

Unsigned control endpoints for tests and operators:
  GET  /_sim/stats    counters: requests by endpoint and status, accepted, duplicates,
                      refusals, rate_limited, faults, blocked, max_requests_in_any_1s
  GET  /_sim/ledger   the accepted messages (same entries as --ledger, with the media
                      download's result once it has ended)
  GET  /_sim/links    the linked chats: [{chat_id, contact_id, conversation_id}]
  GET  /_sim/contacts the account's contacts, seeded and created
  (stats also has contacts_created, links_created, incoming_leads: the chats that got
  a loud message while not linked, each an incoming lead the real Kommo would make;
  links_repeated, links_changed, links_after_messages; and crm_* counters of the
  main API)
  POST /_sim/faults   {"spec":"500=0.05","seed":7} changes the faults at run time
  POST /_sim/unblock  lifts the --block-after block

Media are fetched as Kommo fetches them (--media-fetch on, the default): after
accepting a picture, video, file, voice, audio or sticker message, the simulator
downloads message.media with no credentials (--media-timeout, --media-max-size,
--media-concurrency at once) and checks its size against message.file_size. The
result is in /_sim/stats (media_fetched, media_failed by reason: forbidden (an
expired or refused presigned URL), not_found, size_mismatch, timeout, network,
not_http (a file: URL or a path: not hosted), too_large, empty), in the entries of
/_sim/ledger (media) and in the --media-ledger file, one JSON line per download.
URLs under a reserved example domain (example.com, .test, .invalid) are not
fetched (media_skipped): the samples use them. --media-fetch off leaves media
URLs alone, for offline rehearsals.

Every accepted message is appended to the --ledger file, one JSON line each:
seq, received_at, scope_id, conversation_id, chat_id, msgid, kommo_msgid, silent,
msec_timestamp, duplicate, payload (as received). A repeated msgid is recorded
again as a duplicate (the worst case the real API may do) unless --idempotent-msgid.

Rehearse a migration:
  export KOMMO_CHANNEL_SECRET=any-test-secret   # the same value for both programs
  kommo-sim --addr 127.0.0.1:8089 --scope-id rehearsal_scope --ledger ledger.jsonl &
  export KOMMO_API_URL=http://127.0.0.1:8089 KOMMO_SCOPE_ID=rehearsal_scope
  kommo-import ...                               # or --api-url http://127.0.0.1:8089
  curl -s http://127.0.0.1:8089/_sim/stats       # duplicates must be 0, rate_limited 0
  # the ledger shows what "Kommo" received: every msgid once, in order per
  # conversation, silent=false only on the newest message of each conversation.
Then do it again with --faults and kill the importer half-way: the result must
be the same.

Fault spec (--faults): comma-separated kind=probability, at most one fault per
request, probabilities summing to at most 1, drawn from --seed (same seed and
request sequence, same faults):
  500, 503      answer 5xx before processing; nothing recorded
  429           spurious 429 with Retry-After of --fault-retry-after
  hang          no answer for --hang, or until the client gives up; nothing recorded
  accept-500    message recorded, then 500
  accept-drop   message recorded, then the TCP connection is dropped, no answer
  400           400 INVALID_DATA, nothing recorded: the importer marks the message failed;
                rehearse report and retry with it (turn it off, then kommo-import retry)
  accept-lose   200 with ids as if stored, and nothing stored (the chat is created): a lost
                message that only reading history back shows; rehearse verify --repair with it
  e.g. --faults 500=0.02,503=0.02,429=0.01,hang=0.01,accept-500=0.02,accept-drop=0.01
new_message takes all kinds; create chat and history take 500, 503, hang and
--latency/--jitter; connect takes none.

Usage: kommo-sim --scope-id ID --ledger FILE [flags]
The channel secret is read only from the environment variable ` + EnvSecret + `.

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kommo-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr            = fs.String("addr", "127.0.0.1:8089", "listen address; port 0 picks a free port")
		addrFile        = fs.String("addr-file", "", "write the base URL (http://host:port) to this file once listening")
		scopeID         = fs.String("scope-id", getenv(EnvScopeID), "the scope id served (default $"+EnvScopeID+")")
		channelID       = fs.String("channel-id", "", "channel id accepted by connect (default: the part of --scope-id before '_')")
		ledgerPath      = fs.String("ledger", "", "append accepted messages to this JSONL file (required)")
		rate            = fs.Float64("rate", sim.DefaultRate, "rate limit in requests per second over all API requests; 0 = no limit")
		burst           = fs.Int("burst", 0, "token bucket size (default ceil(rate))")
		retryAfter      = fs.Duration("retry-after", sim.DefaultRetryAfter, "retry_after of a rate-limit 429")
		blockAfter      = fs.Int("block-after", 0, "after this many rate-limit 429s answer every request with a 403 HTML block page (0 = never)")
		faultSpec       = fs.String("faults", "", "fault spec, e.g. 500=0.02,accept-drop=0.01 (see above)")
		seed            = fs.Int64("seed", 1, "seed of the fault generator")
		faultRetryAfter = fs.Duration("fault-retry-after", sim.DefaultFaultRetryAfter, "retry_after of an injected 429")
		latency         = fs.Duration("latency", 0, "added to every new_message, create chat and history request")
		jitter          = fs.Duration("jitter", 0, "random extra latency in [0, jitter)")
		historyDelay    = fs.Duration("history-delay", 0, "an accepted message shows in history only after this delay")
		historyOrder    = fs.String("history-order", sim.HistoryOrderTime, "how history lists a chat, newest first: time (by msec_timestamp)\n"+
			"or arrival (as received: a message sent after newer ones of its chat shows after them)")
		hang         = fs.Duration("hang", sim.DefaultHang, "how long a hang fault holds a request")
		idempotent   = fs.Bool("idempotent-msgid", false, "answer a repeated msgid with the first result instead of recording a duplicate")
		verbose      = fs.Bool("verbose", false, "log every request")
		contactsFile = fs.String("contacts", "", "seed the account with the contacts of this JSONL `FILE` (v4 shape, one a line:\n"+
			`{"id":1,"name":"Ivan","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+7 916 123-45-67"}]}]}`+")")
		usersFile       = fs.String("crm-users", "", "the account's users, a JSONL `FILE` of {id, name, email, amojo_id}")
		tokenFile       = fs.String("token-file", "", "read the main API's admin token from this `FILE` instead of env "+EnvToken)
		tokenNoLink     = fs.Bool("crm-token-no-link", false, "the token is not the chat channel's integration's: linking chats gets 403")
		crmRate         = fs.Float64("crm-rate", sim.DefaultRate, "the main API's rate limit in requests per second, apart from the Chats API's; 0 = no limit")
		crmRetryAfter   = fs.Duration("crm-retry-after", sim.DefaultRetryAfter, "retry_after of a main-API 429")
		crmFaultSpec    = fs.String("crm-faults", "", "main-API fault spec: 500, 503, accept-500, accept-drop (e.g. accept-drop=0.05)")
		mediaFetch      = fs.String("media-fetch", "on", "on: download the media of every accepted message as Kommo does; off: leave media URLs alone")
		mediaTimeout    = fs.Duration("media-timeout", sim.DefaultMediaTimeout, "bound of one media download, body included")
		mediaMaxSize    = fs.Int64("media-max-size", sim.DefaultMediaMaxSize, "most bytes of one media file (more: too_large)")
		mediaConc       = fs.Int("media-concurrency", sim.DefaultMediaConcurrency, "media downloads at once")
		mediaLedgerPath = fs.String("media-ledger", "", "append one JSON line per media download to this file (default: the --ledger path with .media.jsonl)")
	)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), helpText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageErr{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageErr{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	secret := signer.Secret(getenv(EnvSecret))
	if secret == "" {
		return usageErr{"the channel secret is not set: export " + EnvSecret}
	}
	if *scopeID == "" {
		return usageErr{"--scope-id is required (or set " + EnvScopeID + ")"}
	}
	if *ledgerPath == "" {
		return usageErr{"--ledger is required"}
	}
	faults, err := sim.ParseFaults(*faultSpec)
	if err != nil {
		return usageErr{"--faults: " + err.Error()}
	}
	if *rate < 0 {
		return usageErr{"--rate must not be negative"}
	}
	if *mediaFetch != "on" && *mediaFetch != "off" {
		return usageErr{fmt.Sprintf("--media-fetch %q: want on or off", *mediaFetch)}
	}
	if *mediaTimeout <= 0 || *mediaMaxSize <= 0 || *mediaConc < 1 || *mediaConc > 256 {
		return usageErr{"--media-timeout and --media-max-size must be above 0, --media-concurrency 1 to 256"}
	}
	if *crmRate < 0 {
		return usageErr{"--crm-rate must not be negative"}
	}
	crmFaults, err := sim.ParseFaults(*crmFaultSpec)
	if err != nil {
		return usageErr{"--crm-faults: " + err.Error()}
	}
	for kind := range crmFaults {
		switch kind {
		case sim.Fault500, sim.Fault503, sim.FaultAccept500, sim.FaultAcceptDrop:
		default:
			return usageErr{"--crm-faults: " + kind + " is not a main-API fault (500, 503, accept-500, accept-drop)"}
		}
	}
	token := signer.Secret(strings.TrimSpace(getenv(EnvToken)))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return usageErr{"--token-file: " + err.Error()}
		}
		if token = signer.Secret(strings.TrimSpace(string(b))); token == "" {
			return usageErr{"--token-file " + *tokenFile + " is empty"}
		}
	}
	var contacts []map[string]any
	if *contactsFile != "" {
		f, err := os.Open(*contactsFile)
		if err != nil {
			return usageErr{"--contacts: " + err.Error()}
		}
		contacts, err = sim.LoadContacts(f, *contactsFile)
		f.Close()
		if err != nil {
			return usageErr{"--contacts: " + err.Error()}
		}
	}
	var users []sim.CRMUser
	if *usersFile != "" {
		if users, err = loadUsers(*usersFile); err != nil {
			return usageErr{"--crm-users: " + err.Error()}
		}
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ledger, err := os.OpenFile(*ledgerPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	defer ledger.Close()

	var fetch *sim.MediaFetch
	mediaDesc := "off"
	if *mediaFetch == "on" {
		if *mediaLedgerPath == "" {
			*mediaLedgerPath = strings.TrimSuffix(*ledgerPath, ".jsonl") + ".media.jsonl"
		}
		mediaLedger, err := os.OpenFile(*mediaLedgerPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open media ledger: %w", err)
		}
		defer mediaLedger.Close()
		fetch = &sim.MediaFetch{Timeout: *mediaTimeout, MaxSize: *mediaMaxSize, Concurrency: *mediaConc, Ledger: mediaLedger}
		mediaDesc = "on, ledger " + *mediaLedgerPath
	}

	s, err := sim.New(sim.Options{
		ScopeID: *scopeID, ChannelID: *channelID, Secret: secret,
		Rate: *rate, Burst: *burst, RetryAfter: *retryAfter, BlockAfter: *blockAfter,
		Faults: faults, Seed: *seed, FaultRetryAfter: *faultRetryAfter,
		Latency: *latency, Jitter: *jitter, HistoryDelay: *historyDelay, HistoryOrder: *historyOrder, Hang: *hang,
		IdempotentMsgID: *idempotent, Ledger: ledger, Logger: logger, MediaFetch: fetch,
		CRMToken: token, CRMTokenNoLink: *tokenNoLink, Contacts: contacts, CRMUsers: users,
		CRMRate: *crmRate, CRMRetryAfter: *crmRetryAfter, CRMFaults: crmFaults,
	})
	if err != nil {
		return usageErr{err.Error()}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	url := "http://" + ln.Addr().String()
	// Handlers held by a hang fault end when the base context is cancelled,
	// so shutdown never waits out --hang.
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	fmt.Fprintf(stderr, "kommo-sim listening on %s (scope %s, rate %g/s, faults %s, ledger %s, media fetch %s)\n",
		url, *scopeID, *rate, faults, *ledgerPath, mediaDesc)
	if token != "" {
		fmt.Fprintf(stderr, "kommo-sim main API (v4) at %s/api/v4/: %d contacts, %d users, rate %g/s%s\n",
			url, len(contacts), len(users), *crmRate, map[bool]string{true: ", linking refused (--crm-token-no-link)"}[*tokenNoLink])
	}
	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, []byte(url+"\n")); err != nil {
			srv.Close()
			return fmt.Errorf("write --addr-file: %w", err)
		}
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	cancelBase()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	// Downloads still running end within --media-timeout; the counters
	// printed below include them.
	mediaCtx, cancelMedia := context.WithTimeout(context.Background(), *mediaTimeout+time.Second)
	defer cancelMedia()
	if err := s.WaitMedia(mediaCtx); err != nil {
		logger.Warn("media downloads still running at exit", "pending", s.Stats().MediaPending)
	}
	// The final counters go to stdout, for scripts.
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.Stats()); err != nil {
		return fmt.Errorf("print stats: %w", err)
	}
	if err := ledger.Sync(); err != nil {
		return fmt.Errorf("sync ledger: %w", err)
	}
	return nil
}

// loadUsers reads a JSONL file of the account's users.
func loadUsers(path string) ([]sim.CRMUser, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []sim.CRMUser
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var u sim.CRMUser
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// writeFileAtomic writes via a temporary file and a rename, so a test polling
// for the file never reads it half-written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kommo-sim-addr-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
