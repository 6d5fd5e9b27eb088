package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
)

// parseSpec parses the --source value: "csv:PATH", "jsonl:PATH" (also
// "ndjson:PATH"), "postgres", or a bare PATH whose extension (.csv, .jsonl,
// .ndjson, optionally followed by .gz) gives the kind. Only Kind and Path are
// set; the postgres settings come from their own flags.
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
		switch strings.ToLower(kind) {
		case "csv":
			kind = sources.KindCSV
		case "jsonl", "ndjson":
			kind = sources.KindJSONL
		default:
			return sources.Spec{}, fmt.Errorf("source %q: unknown kind %q (want csv:PATH, jsonl:PATH or postgres)", s, kind)
		}
		if path == "" {
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
	case s == "-":
		return sources.Spec{}, errors.New("source -: say the format of stdin: csv:- or jsonl:-")
	}
	return sources.Spec{}, fmt.Errorf("source %q: cannot tell the format from the name; write csv:PATH or jsonl:PATH", s)
}

// registerSourceFlags defines the source flags on fs, filling spec as they parse:
// --source, --source-dsn, --source-query, --source-table, --map (repeatable),
// --ignore-columns, --strict, --media-missing and --media-max-size. Flags may come in any order.
// run and validate share them, so both read a source by the same rules.
func registerSourceFlags(fs *flag.FlagSet, spec *sources.Spec) {
	fs.Func("source", "where the messages come from: `SOURCE` is csv:PATH, jsonl:PATH, postgres,\n"+
		"or a PATH ending in .csv, .jsonl or .ndjson (optionally .gz); PATH - reads stdin", func(v string) error {
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
	fs.Func("tz", "time `ZONE` (IANA name, e.g. Europe/Berlin) of timestamps written without one:\n"+
		"WhatsApp exports (required there), CSV times like 2024-03-01 09:15:02", func(v string) error {
		loc, err := time.LoadLocation(strings.TrimSpace(v))
		if err != nil || strings.TrimSpace(v) == "" {
			return fmt.Errorf("not a time zone name (want an IANA name such as Europe/Berlin or UTC)")
		}
		spec.Location = loc
		return nil
	})
	fs.StringVar(&spec.TimeFormat, "time-format", spec.TimeFormat, "Go `layout` of CSV timestamps that are neither unix seconds nor RFC 3339\n"+
		"(e.g. \"02.01.2006 15:04\"); without it the common layouts are detected")
	fs.Func("date-order", "`ORDER` of day, month and year in a WhatsApp export's dates when the file cannot tell: dmy, mdy or ymd", func(v string) error {
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
