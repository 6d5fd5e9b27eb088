package sources

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Source kinds.
const (
	KindCSV      = "csv"
	KindJSONL    = "jsonl"
	KindPostgres = "postgres"
)

// DefaultMaxRecordBytes is the longest line or record read when
// Spec.MaxRecordBytes is 0. Lines of 16 MiB (a message with a big inline text)
// must pass, so the cap sits well above that; a longer one is rejected with its
// line number and skipped without being held in memory.
const DefaultMaxRecordBytes = 32 << 20

// Spec says which source to open and how to read it.
type Spec struct {
	Kind string // KindCSV, KindJSONL or KindPostgres
	// Path is the file; "-" reads stdin. Gzip is detected by its magic bytes,
	// so "export.jsonl.gz" and a gzipped stdin both work.
	Path string
	// DSN, and exactly one of Query and Table, for KindPostgres. Table may be
	// "schema.table"; it is quoted as an identifier.
	DSN, Query, Table string
	// ColumnMap renames columns: canonical name -> the name in the input (CSV
	// header or postgres column).
	ColumnMap map[string]string
	// IgnoreColumns are input columns to skip instead of rejecting as unknown.
	IgnoreColumns []string
	// MaxRecordBytes caps one line or record; 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Now is the clock for the "in the future" check; nil means time.Now.
	Now func() time.Time
	// Stdin is read for Path "-"; nil means os.Stdin.
	Stdin io.Reader
	// Users, if set, gives outgoing messages without sender.ref_id the
	// amojo_id of their agent's Kommo user (or the bot id) before validation;
	// see users.go.
	Users *UserMap
}

// ParseSpec parses the --source value: "csv:PATH", "jsonl:PATH" (also
// "ndjson:PATH"), "postgres", or a bare PATH whose extension (.csv, .jsonl,
// .ndjson, optionally followed by .gz) gives the kind. Only Kind and Path are
// set; the postgres settings come from their own flags.
func ParseSpec(s string) (Spec, error) {
	if s == "" {
		return Spec{}, errors.New("empty source")
	}
	if s == KindPostgres || strings.HasPrefix(s, "postgres:") || strings.HasPrefix(s, "postgresql:") {
		if s != KindPostgres {
			return Spec{}, fmt.Errorf("source %q: write --source postgres and give the URL with --source-dsn", s)
		}
		return Spec{Kind: KindPostgres}, nil
	}
	if kind, path, ok := strings.Cut(s, ":"); ok && len(kind) > 1 { // len>1 keeps Windows "C:\..." a path
		switch strings.ToLower(kind) {
		case "csv":
			kind = KindCSV
		case "jsonl", "ndjson":
			kind = KindJSONL
		default:
			return Spec{}, fmt.Errorf("source %q: unknown kind %q (want csv:PATH, jsonl:PATH or postgres)", s, kind)
		}
		if path == "" {
			return Spec{}, fmt.Errorf("source %q: no path (use - for stdin)", s)
		}
		return Spec{Kind: kind, Path: path}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(s, ".gz"))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return Spec{Kind: KindCSV, Path: s}, nil
	case strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"):
		return Spec{Kind: KindJSONL, Path: s}, nil
	case s == "-":
		return Spec{}, errors.New("source -: say the format of stdin: csv:- or jsonl:-")
	}
	return Spec{}, fmt.Errorf("source %q: cannot tell the format from the name; write csv:PATH or jsonl:PATH", s)
}

// Check reports a spec that cannot be opened as it stands (a configuration
// mistake, not a data problem).
func (s Spec) Check() error {
	switch s.Kind {
	case KindCSV, KindJSONL:
		if s.Path == "" {
			return errors.New("source: no path")
		}
		if s.DSN != "" || s.Query != "" || s.Table != "" {
			return fmt.Errorf("source: --source-dsn, --source-query and --source-table are for --source postgres, not %s", s.Kind)
		}
		if s.Kind == KindJSONL && (len(s.ColumnMap) > 0 || len(s.IgnoreColumns) > 0) {
			return errors.New("source: --map and --ignore-columns are for CSV and postgres, not JSONL")
		}
	case KindPostgres:
		if s.DSN == "" {
			return errors.New("source postgres: --source-dsn is required")
		}
		if (s.Query == "") == (s.Table == "") {
			return errors.New("source postgres: give exactly one of --source-query and --source-table")
		}
	case "":
		return errors.New("no source given (--source)")
	default:
		return fmt.Errorf("source: unknown kind %q", s.Kind)
	}
	for canon := range s.ColumnMap {
		if _, ok := canonicalSet[canon]; !ok {
			return fmt.Errorf("--map %s=...: %q is not a canonical column (canonical: %s)", canon, canon, strings.Join(CanonicalColumns, ", "))
		}
	}
	return nil
}

// RegisterFlags defines the source flags on fs, filling spec as they parse:
// --source, --source-dsn, --source-query, --source-table, --map (repeatable)
// and --ignore-columns. Flags may come in any order.
func RegisterFlags(fs *flag.FlagSet, spec *Spec) {
	fs.Func("source", "where the messages come from: `SOURCE` is csv:PATH, jsonl:PATH, postgres,\n"+
		"or a PATH ending in .csv, .jsonl or .ndjson (optionally .gz); PATH - reads stdin", func(v string) error {
		parsed, err := ParseSpec(v)
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
		if _, known := canonicalSet[canon]; !known {
			return fmt.Errorf("%q is not a canonical column (canonical: %s)", canon, strings.Join(CanonicalColumns, ", "))
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
}

// CanonicalColumns are the column names CSV headers and postgres result
// columns are matched against (case-insensitively), in documentation order.
var CanonicalColumns = func() []string {
	cols := []string{"conversation_id", "msgid", "timestamp", "msec_timestamp"}
	for _, who := range []string{"sender", "receiver"} {
		for _, f := range []string{"id", "name", "ref_id", "avatar", "profile_link", "phone", "email"} {
			cols = append(cols, who+"_"+f)
		}
	}
	return append(cols,
		"message_type", "message_text", "message_media", "message_file_name", "message_file_size",
		"message_media_duration", "message_sticker_id", "message_location_lat", "message_location_lon",
		"message_contact_name", "message_contact_phone",
		"post_id", "post_url", "post_preview_url", "post_preview_permalink", "post_username", "post_caption",
		"source_external_id")
}()

var canonicalSet = func() map[string]int {
	m := make(map[string]int, len(CanonicalColumns))
	for i, c := range CanonicalColumns {
		m[c] = i
	}
	return m
}()

// sortedKeys is for stable error messages.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
