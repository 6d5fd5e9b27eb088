package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
)

// parseSpec parses the --source value: "csv:PATH", "jsonl:PATH" (also
// "ndjson:PATH"), "postgres", a messenger export "telegram:PATH",
// "whatsapp:PATH", "messenger:PATH" or "instagram:PATH" (PATH is the
// export's file or folder), or a bare PATH whose name gives the kind (.csv,
// .jsonl, .ndjson, optionally followed by .gz; Telegram's result.json). Only
// Kind and Path are set; the postgres settings come from their own flags.
func parseSpec(s string) (sources.Spec, error) {
	if s == "" {
		return sources.Spec{}, errors.New("empty source")
	}
	if s == sources.KindPostgres || strings.HasPrefix(s, "postgres:") || strings.HasPrefix(s, "postgresql:") {
		if s != sources.KindPostgres {
			return sources.Spec{}, fmt.Errorf("source %q: write --source postgres and give the URL with --source-dsn", s)
		}
		return sources.Spec{Kind: sources.KindPostgres}, nil
	}
	if kind, path, ok := strings.Cut(s, ":"); ok && len(kind) > 1 { // len>1 keeps Windows "C:\..." a path
		switch k := strings.ToLower(kind); {
		case k == "csv":
			kind = sources.KindCSV
		case k == "jsonl", k == "ndjson":
			kind = sources.KindJSONL
		case sources.IsExportKind(k):
			kind = k
			if path == "-" {
				return sources.Spec{}, fmt.Errorf("source %q: a %s export is read from its file or folder (its media lie beside it), not from stdin", s, k)
			}
		default:
			return sources.Spec{}, fmt.Errorf("source %q: unknown kind %q (want csv:PATH, jsonl:PATH, postgres, or an export: %s)", s, kind, exportKindsHelp())
		}
		if path == "" {
			if sources.IsExportKind(kind) {
				return sources.Spec{}, fmt.Errorf("source %q: no path (the export's file or folder)", s)
			}
			return sources.Spec{}, fmt.Errorf("source %q: no path (use - for stdin)", s)
		}
		return sources.Spec{Kind: kind, Path: path}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(s, ".gz"))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return sources.Spec{Kind: sources.KindCSV, Path: s}, nil
	case strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"):
		return sources.Spec{Kind: sources.KindJSONL, Path: s}, nil
	case filepath.Base(name) == "result.json":
		return sources.Spec{Kind: sources.KindTelegram, Path: s}, nil
	case s == "-":
		return sources.Spec{}, errors.New("source -: say the format of stdin: csv:- or jsonl:-")
	}
	return sources.Spec{}, fmt.Errorf("source %q: cannot tell the format from the name; write csv:PATH, jsonl:PATH or KIND:PATH for an export (%s)", s, exportKindsHelp())
}

// exportKindsHelp is "telegram:PATH, whatsapp:PATH, ...".
func exportKindsHelp() string {
	kinds := make([]string, len(sources.ExportKinds))
	for i, k := range sources.ExportKinds {
		kinds[i] = k + ":PATH"
	}
	return strings.Join(kinds, ", ")
}

// registerSourceFlags defines the source flags on fs, filling spec as they parse:
// --source, --source-dsn, --source-query, --source-table, --map (repeatable),
// --ignore-columns, --strict, --media-missing and --media-max-size. Flags may come in any order.
// run and validate share them, so both read a source by the same rules.
func registerSourceFlags(fs *flag.FlagSet, spec *sources.Spec) {
	fs.Func("source", "where the messages come from: `SOURCE` is csv:PATH, jsonl:PATH, postgres,\n"+
		"or a PATH ending in .csv, .jsonl or .ndjson (optionally .gz); PATH - reads stdin;\n"+
		"or a messenger's export, its file or folder: "+exportKindsHelp(), func(v string) error {
		parsed, err := parseSpec(v)
		if err != nil {
			return err
		}
		spec.Kind, spec.Path = parsed.Kind, parsed.Path
		return nil
	})
	fs.StringVar(&spec.DSN, "source-dsn", spec.DSN, "PostgreSQL `URL` of the database to read messages from (--source postgres)")
	fs.StringVar(&spec.Query, "source-query", spec.Query, "`SQL` returning one row per message, columns named canonically\n"+
		"(alias them: SELECT id AS msgid, ...) or one json/jsonb column named payload")
	fs.StringVar(&spec.Table, "source-table", spec.Table, "`TABLE` (or schema.table) to read whole instead of --source-query; read in msgid order")
	fs.Func("map", "rename a column: `canonical=theirs` (repeatable), e.g. --map msgid=message_id", func(v string) error {
		canon, theirs, ok := strings.Cut(v, "=")
		canon, theirs = strings.TrimSpace(canon), strings.TrimSpace(theirs)
		if !ok || canon == "" || theirs == "" {
			return fmt.Errorf("want canonical=theirs, got %q", v)
		}
		if !sources.IsCanonical(canon) {
			return fmt.Errorf("%q is not a canonical column (canonical: %s)", canon, strings.Join(sources.CanonicalColumns, ", "))
		}
		if spec.ColumnMap == nil {
			spec.ColumnMap = map[string]string{}
		}
		spec.ColumnMap[canon] = theirs
		return nil
	})
	fs.Func("ignore-columns", "comma-separated input `columns` to skip (otherwise an unknown column is an error)", func(v string) error {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				spec.IgnoreColumns = append(spec.IgnoreColumns, c)
			}
		}
		return nil
	})
	fs.BoolVar(&spec.Strict, "strict", spec.Strict, "reject JSONL records holding a field that is not part of the Chats API payload\n"+
		"(a typo, another system's field); without it such fields are only counted, and not sent")
	fs.Func("tz", "time `ZONE` (IANA name, e.g. Europe/Berlin, or UTC) of timestamps written without one:\n"+
		"WhatsApp exports (required there), CSV times like 2024-03-01 09:15:02, 01.03.2024 09:15 or Excel serial dates,\n"+
		"postgres columns of type timestamp (without time zone); such a time without --tz is a rejected record", func(v string) error {
		loc, err := time.LoadLocation(strings.TrimSpace(v))
		if err != nil || strings.TrimSpace(v) == "" {
			return fmt.Errorf("not a time zone name (want an IANA name such as Europe/Berlin or UTC)")
		}
		spec.Location = loc
		return nil
	})
	fs.StringVar(&spec.TimeFormat, "time-format", spec.TimeFormat, "Go `layout` of CSV timestamps that are neither unix seconds nor RFC 3339\n"+
		"(e.g. \"02.01.2006 15:04\", \"01/02/2006 3:04 PM\"); without it these are detected: 2006-01-02 15:04:05 (or T, with or\n"+
		"without seconds), 02.01.2006 15:04:05, 01/02/2006 or 02/01/2006 with a 24- or 12-hour time, Excel serial dates")
	fs.Func("date-order", "`ORDER` of day, month and year when the dates cannot tell: dmy, mdy or ymd\n"+
		"(a WhatsApp export's dates; CSV dates like 03/04/2024, which are refused as ambiguous without it)", func(v string) error {
		switch v {
		case "dmy", "mdy", "ymd":
			spec.DateOrder = v
			return nil
		}
		return fmt.Errorf("want dmy, mdy or ymd, got %q", v)
	})
	fs.Func("self", "`NAME` of the company's side in a messenger export (repeatable): messages by it are outgoing;\n"+
		"every agent of --users counts too", func(v string) error {
		if v = strings.TrimSpace(v); v == "" {
			return errors.New("empty name")
		}
		spec.Self = append(spec.Self, v)
		return nil
	})
	registerFilterFlags(fs, spec)
	fs.Func("media-missing", "`what` becomes of a picture, video, file, voice or audio message without media\n"+
		"(a sticker: without media and sticker_id), which Kommo would show as a broken file:\n"+
		"reject (the default), or text: send \"[picture: name.jpg] caption\" as a text message", func(v string) error {
		switch v {
		case sources.MediaMissingReject, sources.MediaMissingText:
			spec.MediaMissing = v
			return nil
		}
		return fmt.Errorf("want reject or text, got %q", v)
	})
	fs.Func("media-max-size", "largest local media `SIZE` a CSV or JSONL record may name (e.g. 10MB; MB = 1024*1024 bytes;\n"+
		"default 50MB): a larger file is rejected, or sent as text with --media-missing text.\n"+
		"Channels may take less (WhatsApp: about 16MB of media)", func(v string) error {
		n, err := media.ParseSize(v)
		if err != nil {
			return err
		}
		spec.MediaMaxSize = n
		return nil
	})
}

// registerFilterFlags defines the subset flags: --conversation (repeatable),
// --conversations FILE, --since, --until and --limit-conversations. They
// fill spec.Filter, which every Reader applies; the subset is part of the
// source's identity, so a rehearsal on it is a run of its own.
func registerFilterFlags(fs *flag.FlagSet, spec *sources.Spec) {
	filter := func() *sources.Filter {
		if spec.Filter == nil {
			spec.Filter = &sources.Filter{}
		}
		return spec.Filter
	}
	fs.Func("conversation", "rehearse on a subset: only the conversation with this `ID` (repeatable); the records of\n"+
		"other conversations are skipped and counted, neither checked nor rejected", func(v string) error {
		if v = strings.TrimSpace(v); v == "" {
			return errors.New("empty conversation id")
		}
		filter().Conversations = append(filter().Conversations, v)
		return nil
	})
	fs.Func("conversations", "only the conversations listed in `FILE`, one id a line (# starts a comment)", func(v string) error {
		ids, err := readIDs(v)
		if err != nil {
			return err
		}
		f := filter()
		f.Conversations = append(f.Conversations, ids...)
		f.ConversationsFrom = v
		return nil
	})
	fs.Func("since", "only messages at or after `TIME` (a date, 2024-03-01, at midnight in --tz or UTC; or RFC 3339):\n"+
		"each message by its own timestamp, so a conversation is cut to the window and its newest message in the\n"+
		"window is the loud one", func(v string) error {
		b, err := sources.ParseBound(v)
		if err != nil {
			return err
		}
		filter().Since = b
		return nil
	})
	fs.Func("until", "only messages before `TIME` (RFC 3339), or on or before a date (2024-03-31: the whole day, in --tz or UTC)", func(v string) error {
		b, err := sources.ParseBound(v)
		if err != nil {
			return err
		}
		filter().Until = b
		return nil
	})
	fs.Func("limit-conversations", "only the first `N` conversations met in the source (after the other subset flags)", func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return errors.New("want a whole number above 0")
		}
		filter().Limit = n
		return nil
	})
}

// readIDs reads one id a line; blank lines and # comments are skipped.
func readIDs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ids = append(ids, l)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s lists no conversation id", path)
	}
	return ids, nil
}

// userFlags are the flags that map agents to Kommo users, shared by run and
// validate. The command turns them into a UserMap (fetching the users when
// KommoDomain is set) and puts it in Spec.Users.
type userFlags struct {
	File        string // --users
	KommoDomain string // --kommo-domain
	BotID       string // --bot-id
}

// Enabled reports whether any mapping was asked for.
func (f userFlags) Enabled() bool { return f.File != "" || f.KommoDomain != "" || f.BotID != "" }

// registerUserFlags defines --users, --kommo-domain and --bot-id on fs.
// tokenEnv names the environment variable that holds the Kommo token, for
// the help text.
func registerUserFlags(fs *flag.FlagSet, f *userFlags, tokenEnv string) {
	fs.StringVar(&f.File, "users", f.File, sources.UsersFileHelp)
	fs.StringVar(&f.KommoDomain, "kommo-domain", f.KommoDomain, "`SUBDOMAIN.kommo.com` of the account: fetch its users (/api/v4/users?with=amojo_id)\n"+
		"and match agents by email; needs an admin's long-lived token in env "+tokenEnv)
	fs.StringVar(&f.BotID, "bot-id", f.BotID, "send the messages of agents that match no Kommo user as the channel's bot\n"+
		"(sender.ref_id = this `ID`, issued with the channel) instead of rejecting them")
}
