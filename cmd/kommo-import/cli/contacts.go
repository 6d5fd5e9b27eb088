package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/contacts"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/sources"
)

// contactsFlags are --link-contacts and the flags that go with it, on run,
// and the matching flags of contacts plan.
type contactsFlags struct {
	link    bool
	create  bool
	mapFile string
	region  string
	crmRate float64
}

// register defines the flags on fs; run also gets --link-contacts.
func (f *contactsFlags) register(fs *flag.FlagSet, withLink bool) {
	if withLink {
		fs.BoolVar(&f.link, "link-contacts", false, "put each chat on the client's existing Kommo contact: before a conversation's first message, create\n"+
			"its chat, find the contact whose phone or e-mail is the client's (strictly: the same number in E.164,\n"+
			"the same address), link the chat to it, and send all its messages silent (no incoming lead).\n"+
			"Needs --kommo-domain and an admin's token in env "+envKommoToken+" of the chat channel's own integration.\n"+
			"Run kommo-import contacts plan first to see what it will do")
	}
	fs.BoolVar(&f.create, "create-contacts", false, "create a contact (name, phone, e-mail) for a client no contact matches, and link to it;\n"+
		"without it such chats are sent unlinked, as without --link-contacts")
	fs.StringVar(&f.mapFile, "contacts-map", "", "the contact of some chats, by hand (it wins over the search): `FILE` is "+contacts.MapHelp)
	fs.StringVar(&f.region, "default-region", "", "`CC`: ISO country code (RU, DE, BR...) of phones written without a country code,\n"+
		"in the export and in the account; without it such phones are not matched")
	f.crmRate = contacts.DefaultCRMRate
	fs.Var(&crmRateValue{p: &f.crmRate}, "crm-rate", "`requests/s` to Kommo's main API (contact search, creation, links), a schedule apart from --rate:\n"+
		"Kommo allows 7 a second per account and IP, shared with the account's other integrations; a 429 there\n"+
		"pauses only these requests")
}

// crmRateValue is --crm-rate: above 0, at most maxRate.
type crmRateValue struct{ p *float64 }

func (v *crmRateValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v *crmRateValue) Set(s string) error {
	r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	switch {
	case err != nil || math.IsNaN(r) || math.IsInf(r, 0):
		return errors.New("not a number: give requests per second above 0 (Kommo allows 7, shared with other integrations)")
	case r <= 0:
		return errors.New("must be above 0 (requests per second)")
	case r > maxRate:
		return fmt.Errorf("must be at most %d requests per second (Kommo allows 7)", maxRate)
	}
	*v.p = r
	return nil
}

// config checks the flags and builds the run's contacts configuration:
// nil without --link-contacts (requireLink: run) or when nothing asks for
// it. The token comes from the environment, as for the users look-up.
func (f *contactsFlags) config(env Env, kommoDomain string, requireLink bool) (*contacts.RunConfig, error) {
	if requireLink && !f.link {
		for name, set := range map[string]bool{"--create-contacts": f.create, "--contacts-map": f.mapFile != "", "--default-region": f.region != ""} {
			if set {
				return nil, withHint(ExitUsage, fmt.Errorf("%s works with --link-contacts", name),
					"add --link-contacts --kommo-domain SUBDOMAIN.kommo.com (kommo-import contacts plan shows what it will do)")
			}
		}
		return nil, nil
	}
	if strings.TrimSpace(kommoDomain) == "" {
		return nil, withHint(ExitUsage, errors.New("matching contacts needs the account: give --kommo-domain"),
			"--kommo-domain mycompany.kommo.com, with an admin's long-lived token in env "+envKommoToken)
	}
	region, err := contacts.ParseRegion(f.region)
	if err != nil {
		return nil, usageError(fmt.Errorf("--default-region: %w", err))
	}
	cfg := &contacts.RunConfig{Create: f.create, MapFile: f.mapFile, Region: region, CRMRate: f.crmRate}
	if f.mapFile != "" {
		if cfg.Map, err = contacts.LoadMap(f.mapFile); err != nil {
			return nil, withHint(ExitUsage, fmt.Errorf("--contacts-map: %w", err), "the file: "+contacts.MapHelp)
		}
	}
	if cfg.API, err = newKommoAPI(env, kommoDomain, 30*time.Second); err != nil {
		return nil, err
	}
	return cfg, nil
}

// contactsAPIError turns a refused main-API call of contacts plan into an
// exit code and what to do.
func contactsAPIError(err error, domain string) error {
	e, ok := kommoapi.AsError(err)
	if !ok {
		return err
	}
	if code, hint, ok := contactsRefusal(e); ok {
		return withHint(code, err, hint)
	}
	return kommoAPIError(err, domain)
}

// contactsRefusal says what to do about a refusal of the token by the main
// API (for contacts plan, and for a run that links: resolveExitCode), and
// its exit code: a token that is wrong or may not link is the operator's
// setting (2), anything else stops until they act (5), a 429 is waited out
// by running again (4). ok is false for any other error.
func contactsRefusal(e *kommoapi.Error) (code int, hint string, ok bool) {
	switch {
	case e.Unauthorized():
		return ExitUsage, e.Reason() + ": generate a new long-lived token in Kommo (an admin's, in the chat channel's own integration) and export " + envKommoToken, true
	case e.Forbidden() && e.Linking():
		return ExitUsage, e.Reason() + ". Generate the token in that integration, as an admin, and export it as " + envKommoToken +
			"; or run without --link-contacts (chats arrive unlinked, each making an incoming lead)", true
	case e.Forbidden():
		return ExitOperator, e.Reason() + ": use an admin's token; if it is one, ask Kommo support whether the account or this IP is blocked", true
	case e.PaymentRequired():
		return ExitOperator, e.Reason() + ": renew the subscription, then run the same command again", true
	case e.RateLimited():
		return ExitInterrupted, fmt.Sprintf("Kommo's main API is rate limiting this account or IP (other integrations count too): wait %s, lower --crm-rate, and run the same command again",
			max(e.RetryAfter, time.Second).Round(time.Second)), true
	}
	return 0, "", false
}

const contactsHelp = `
Match every conversation of an export to the account's contacts, the way
run --link-contacts will, and say what it would do, writing nothing to Kommo:

  link             exactly one contact has the client's phone or e-mail: the chat
                   goes on it, all its messages silent (no incoming lead)
  create           none has (with --create-contacts): one is created and linked
  unlinked         none has: the chat is sent unlinked, as without --link-contacts
  ambiguous        several have: not linked; the candidates are listed
  no_contact_info  the client has no usable phone or e-mail
  error            the search failed for this conversation (note says why)

Phones compare as the same number in E.164 (the search asks for the national
number, so "+7 916...", "8 (916)..." and "916..." all come back, and look-alikes
are dropped); e-mails compare case aside. Kommo's search is loose: only
verified hits count.

The CSV (--out) has one row a conversation: conversation_id, client_id,
client_name, phone, email, outcome, method, contact_id, contact_name,
candidates, messages, note. To settle the ambiguous ones, fill contact_id in
their rows with one of the candidates (or "none") and give the file back as
--contacts-map to plan again and to run.

Reads the main API only (GET /api/v4/contacts), at --crm-rate: a 429 waits
its retry_after and tries again. Needs an admin's long-lived token in env
KOMMO_TOKEN; a token that may not link (not the chat channel's own
integration's) is reported as a warning here and refused by run.

Examples:
  KOMMO_TOKEN=... kommo-import contacts plan --source export.jsonl --kommo-domain mycompany.kommo.com --default-region RU
  kommo-import contacts plan --source export.jsonl --kommo-domain mycompany --contacts-map plan.csv --out plan2.csv`

// runContacts is "contacts plan".
func runContacts(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	if len(args) == 0 || args[0] != "plan" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprintln(env.Stdout, "Usage: kommo-import contacts plan --source SOURCE --kommo-domain DOMAIN [flags]\n"+strings.TrimRight(contactsHelp, "\n"))
			return errHelp
		}
		return withHint(ExitUsage, errors.New("contacts: want a subcommand: plan"), "kommo-import contacts plan --help")
	}
	fs := newFlagSet(env, "contacts plan", "--source SOURCE --kommo-domain DOMAIN [flags]", contactsHelp)
	var spec sources.Spec
	registerSourceFlags(fs, &spec)
	var f contactsFlags
	f.register(fs, false)
	domain := fs.String("kommo-domain", "", "`SUBDOMAIN.kommo.com` of the account whose contacts are matched (a kommo-sim URL for a rehearsal),\n"+
		"with an admin's long-lived token in env "+envKommoToken)
	// The agents' flags of run, so that the source reads as run reads it
	// (an agent's message without them is an invalid record, skipped).
	var users userFlags
	fs.StringVar(&users.File, "users", "", sources.UsersFileHelp)
	fs.StringVar(&users.BotID, "bot-id", "", "as run's: the agents that match no Kommo user are the channel's bot (this `ID`)")
	out := fs.String("out", "contacts-plan.csv", "write the plan to this CSV `FILE` (- for stdout)")
	force := fs.Bool("force", false, "let --out replace an existing file")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := parseFlags(fs, env, args[1:]); err != nil {
		return err
	}
	if spec.Kind == "" {
		return withHint(ExitUsage, errors.New("contacts plan: --source is required"), "kommo-import contacts plan --source export.jsonl --kommo-domain mycompany.kommo.com")
	}
	if spec.Kind == sources.KindPostgres && spec.DSN == "" {
		spec.DSN = env.Getenv(envSourceDSN)
	}
	if err := spec.Check(); err != nil {
		return usageError(fmt.Errorf("contacts plan: %w", err))
	}
	f.link = true
	cfg, err := f.config(env, *domain, false)
	if err != nil {
		return err
	}
	defer cfg.API.CloseIdleConnections()
	if users.File != "" || users.BotID != "" {
		users.KommoDomain = *domain
		if spec.Users, err = loadUserMap(ctx, env, users); err != nil {
			return err
		}
	}
	var file *atomicFile
	if *out != "-" {
		if file, err = createAtomic(*out, *force, 0o600); err != nil {
			return withHint(ExitUsage, fmt.Errorf("--out: %w", err), "give --force to replace it, or another --out")
		}
		defer file.abort()
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, logOptions(slog.LevelInfo)))

	stopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-inv.stop.first:
			cancel()
		case <-stopCtx.Done():
		}
	}()
	ctx = stopCtx

	convs, bad, err := readConversations(ctx, spec, env.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			return withHint(ExitInterrupted, errors.New("contacts plan: interrupted"), "run it again; it reads from the start")
		}
		return fmt.Errorf("contacts plan: %w", err)
	}

	pacer := contacts.NewPacer(cfg.CRMRate, 5, log)
	m, err := cfg.Matcher(pacer.Attempt)
	if err != nil {
		return err
	}
	var linkWarning error
	if err := m.Preflight(ctx); err != nil {
		if e, ok := kommoapi.AsError(err); ok && e.Forbidden() && e.Linking() {
			linkWarning = err
			fmt.Fprintf(env.Stderr, "warning: %v\n  %s: run --link-contacts would be refused with this token\n", err, e.Reason())
		} else {
			return contactsAPIError(err, *domain)
		}
	}
	started, last := time.Now(), time.Now()
	rows, sum, err := m.Plan(ctx, convs, func(done int) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			log.Info("contacts plan", "done", done, "of", len(convs), "searches", m.Searches(), "elapsed", time.Since(started).Round(time.Second).String())
		}
	})
	if err != nil {
		if ctx.Err() != nil {
			return withHint(ExitInterrupted, errors.New("contacts plan: interrupted"), "run it again (the searches are made again)")
		}
		return contactsAPIError(err, *domain)
	}
	var w io.Writer = env.Stdout
	if file != nil {
		w = file
	}
	if err := contacts.WritePlanCSV(w, rows); err != nil {
		return fmt.Errorf("contacts plan: write %s: %w", *out, err)
	}
	if file != nil {
		if err := file.commit(); err != nil {
			return fmt.Errorf("contacts plan: write %s: %w", *out, err)
		}
	}
	report := planReport{Summary: sum, Source: spec.Path, Rejected: bad, Requests: pacer.Requests(), Out: *out}
	if linkWarning != nil {
		report.LinkRefused = linkWarning.Error()
	}
	if *asJSON || *out == "-" {
		dst := env.Stdout
		if *out == "-" {
			dst = env.Stderr
		}
		if *asJSON {
			if err := writeJSON(dst, report); err != nil {
				return err
			}
		} else {
			printPlanReport(dst, report, cfg.Create)
		}
	} else {
		printPlanReport(env.Stdout, report, cfg.Create)
	}
	if sum.Errors > 0 {
		return withHint(ExitIncomplete, fmt.Errorf("contacts plan: %d conversations could not be matched", sum.Errors),
			"their rows have outcome error and the reason in note")
	}
	return nil
}

// planReport is the plan's summary (--json).
type planReport struct {
	contacts.Summary
	Source      string `json:"source"`
	Rejected    int64  `json:"rejected_records"`
	Requests    int64  `json:"requests"`
	Out         string `json:"out"`
	LinkRefused string `json:"link_refused,omitempty"`
}

func printPlanReport(w io.Writer, r planReport, create bool) {
	fmt.Fprintf(w, "contacts plan of %s (%d conversations, %d distinct phone/e-mail, %d requests to the main API)\n",
		orDefault(r.Source, "stdin"), r.Conversations, r.Clients, r.Requests)
	rows := []struct {
		name string
		n    int
		what string
	}{
		{"link", r.Link, "linked to their client's contact, sent all silent"},
		{"create", r.Create, "a contact created for the client and linked (--create-contacts)"},
		{"unlinked", r.Unlinked, "no contact matches: sent unlinked (--create-contacts would create one)"},
		{"ambiguous", r.Ambiguous, "several contacts match: not linked; settle them in --contacts-map"},
		{"no_contact_info", r.NoContactInfo, "the client has no usable phone or e-mail: sent unlinked"},
		{"error", r.Errors, "the search failed: see note"},
	}
	for _, row := range rows {
		if row.n == 0 && (row.name == "error" || row.name == "create" && !create) {
			continue
		}
		fmt.Fprintf(w, "  %-16s %6d  %s\n", row.name, row.n, row.what)
	}
	if r.NeedsRegion > 0 {
		fmt.Fprintf(w, "  (%d of them: the client's phone has no country code and was not used: give --default-region CC)\n", r.NeedsRegion)
	}
	if r.Mapped > 0 {
		fmt.Fprintf(w, "  (%d of them by --contacts-map)\n", r.Mapped)
	}
	if r.Rejected > 0 {
		fmt.Fprintf(w, "  %d records of the source were invalid and left out (kommo-import validate lists them)\n", r.Rejected)
	}
	if r.Out != "-" {
		fmt.Fprintf(w, "wrote %s\n", r.Out)
	}
	if r.LinkRefused != "" {
		fmt.Fprintln(w, "warning: this token may not link chats; run --link-contacts will refuse to start with it")
	}
	if r.Ambiguous > 0 && r.Out != "-" {
		fmt.Fprintf(w, "next: fill contact_id of the ambiguous rows in %s (one of the candidates, or none) and pass it as --contacts-map\n", r.Out)
	}
}

// readConversations reads a source whole into its conversations and their
// clients. Bad records are counted and the first few shown; they are left
// out, as run would reject them.
func readConversations(ctx context.Context, spec sources.Spec, stderr io.Writer) ([]contacts.Conversation, int64, error) {
	r, err := openSource(ctx, spec)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	col := contacts.NewCollector()
	var bad int64
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			if bad++; bad <= 5 {
				fmt.Fprintln(stderr, "skipped:", le.Error())
			}
			continue
		}
		if err != nil {
			return nil, bad, err
		}
		col.Add(&rec.Payload)
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "skipped: %d invalid records in all (kommo-import validate lists them; --users and --bot-id read agents as run does)\n", bad)
	}
	return col.Conversations(), bad, nil
}

// contactLinkColumns are the CSV columns of report --contacts. Filled in
// (contact_id of an ambiguous row: one of its candidates, or "none"), the
// file is a --contacts-map.
var contactLinkColumns = []string{"conversation_id", "client_id", "phone", "email", "state", "method", "contact_id", "contact_name",
	"candidates", "chat_id", "link_id", "reason"}

// writeContactLinks streams the run's chat links (report --contacts) to w
// in format.
func writeContactLinks(ctx context.Context, pool *pgxpool.Pool, run, format string, w io.Writer) error {
	id := func(n int64) string {
		if n == 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	cands := func(c *importer.ContactLink) string {
		parts := make([]string, len(c.Candidates))
		for i, k := range c.Candidates {
			parts[i] = fmt.Sprintf("%d %s (%s)", k.ID, k.Name, k.By)
		}
		return strings.Join(parts, "; ")
	}
	var n, ambiguous int64
	var each func(c *importer.ContactLink) error
	var cw *csv.Writer
	switch format {
	case "csv":
		cw = csv.NewWriter(w)
		if err := cw.Write(contactLinkColumns); err != nil {
			return fmt.Errorf("report: write: %w", err)
		}
		each = func(c *importer.ContactLink) error {
			return cw.Write([]string{c.ConversationID, c.ClientID, c.Phone, c.Email, c.State, c.Method, id(c.ContactID), c.ContactName,
				cands(c), c.ChatID, id(c.LinkID), c.Reason})
		}
	case "jsonl":
		enc := json.NewEncoder(w)
		each = func(c *importer.ContactLink) error { return enc.Encode(c) }
	default:
		each = func(c *importer.ContactLink) error {
			var err error
			switch {
			case c.State == "linked":
				_, err = fmt.Fprintf(w, "linked     %s  contact %d %s(%s)\n", c.ConversationID, c.ContactID, orDefault(c.ContactName+" ", ""), c.Method)
			case c.State == "linking":
				_, err = fmt.Fprintf(w, "in doubt   %s  contact %d: read back on resume\n", c.ConversationID, c.ContactID)
			case c.Method == "ambiguous":
				_, err = fmt.Fprintf(w, "ambiguous  %s  client %s %s %s\n           candidates: %s\n", c.ConversationID, c.ClientID, c.Phone, c.Email, cands(c))
			default:
				_, err = fmt.Fprintf(w, "unlinked   %s  %s: %s\n", c.ConversationID, c.Method, c.Reason)
			}
			return err
		}
	}
	err := importer.EachContactLink(ctx, pool, run, func(c *importer.ContactLink) error {
		n++
		if c.Method == "ambiguous" {
			ambiguous++
		}
		return each(c)
	})
	if err != nil {
		return err
	}
	switch format {
	case "csv":
		cw.Flush()
		return cw.Error()
	case "text":
		_, err = fmt.Fprintf(w, "%s, %s\n", nouns(n, "chat", "chats"), nouns(ambiguous, "ambiguous", "ambiguous"))
		if ambiguous > 0 && err == nil {
			_, err = fmt.Fprintln(w, "settle the ambiguous: report --contacts --format csv --output map.csv, fill their contact_id (a candidate, or none), and give it to run as --contacts-map")
		}
	}
	return err
}
