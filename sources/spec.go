package sources

import (
	"errors"
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
	Kind string // KindCSV, KindJSONL, KindPostgres or one of ExportKinds
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
	// Strict rejects a JSONL (or postgres payload) record holding a key that
	// is not part of the Chats API payload, instead of only counting it in
	// Stats.UnknownFields. A CSV has no such fields: unknown columns fail at
	// Open.
	Strict bool
	// MediaMissing says what becomes of a picture, video, file, voice or
	// audio message without media (a sticker: without media and sticker_id),
	// which Kommo can only show as a broken file: MediaMissingReject ("" too)
	// or MediaMissingText.
	MediaMissing string
	// MediaHosted says that local files (message.media a file: URL, as the
	// messenger exports give them) can be hosted for Kommo to fetch. While
	// false (the default, until media hosting is built), such a message is
	// sent as the text --media-missing text would make ("[picture:
	// photo_12.jpg] caption") and counted in Stats.Skipped.
	MediaHosted bool
	// MediaMaxSize is the largest local media file a CSV or JSONL record may
	// name (--media-max-size); 0 means DefaultMediaMaxSize.
	MediaMaxSize int64

	// Location is the time zone of timestamps that carry none: WhatsApp's
	// headers, CSV times without an offset (--tz). nil: such a timestamp is
	// an error that names the flag.
	Location *time.Location
	// TimeFormat is the Go layout of CSV timestamps that are neither unix
	// seconds nor RFC 3339 (--time-format); "" detects the common layouts.
	TimeFormat string
	// DateOrder is "dmy", "mdy" or "ymd" for WhatsApp dates whose order the
	// file cannot tell (--date-order); "" detects it.
	DateOrder string
	// Filter narrows the source to a subset (filter.go); nil: all of it.
	Filter *Filter
	// Self names the company's side of a messenger export's chats (--self,
	// repeatable): the exporting account when the export does not say.
	// Every agent of Users counts as the company too.
	Self []string
}

// Spec.MediaMissing values.
const (
	// MediaMissingReject rejects the record, naming message.media.
	MediaMissingReject = "reject"
	// MediaMissingText sends a text message instead: "[picture: name.jpg]
	// caption", with the type when the file name is unknown.
	MediaMissingText = "text"
)

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
	case KindTelegram, KindWhatsApp, KindMessenger, KindInstagram:
		if s.Path == "" {
			return fmt.Errorf("source %s: no path (the export's file or folder)", s.Kind)
		}
		if s.DSN != "" || s.Query != "" || s.Table != "" {
			return fmt.Errorf("source: --source-dsn, --source-query and --source-table are for --source postgres, not %s", s.Kind)
		}
		if len(s.ColumnMap) > 0 || len(s.IgnoreColumns) > 0 {
			return fmt.Errorf("source: --map and --ignore-columns are for CSV and postgres, not %s", s.Kind)
		}
		if s.Kind == KindWhatsApp && s.Location == nil {
			return errors.New("source whatsapp: --tz is required: WhatsApp writes times in the phone's local time without a zone; " +
				"give the zone the exporting phone was set to, e.g. --tz Europe/Berlin")
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
	switch s.MediaMissing {
	case "", MediaMissingReject, MediaMissingText:
	default:
		return fmt.Errorf("--media-missing %q: want reject or text", s.MediaMissing)
	}
	if err := s.Filter.check(s.Location); err != nil {
		return err
	}
	for canon := range s.ColumnMap {
		if _, ok := canonicalSet[canon]; !ok {
			return fmt.Errorf("--map %s=...: %q is not a canonical column (canonical: %s)", canon, canon, strings.Join(CanonicalColumns, ", "))
		}
	}
	return nil
}

// IsCanonical reports whether name is one of CanonicalColumns (exactly, lower case).
func IsCanonical(name string) bool {
	_, ok := canonicalSet[name]
	return ok
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
		"shared_post_url", "shared_post_preview_link", "shared_post_preview_permalink", "shared_post_site_name",
		"delivery_status_code", "delivery_status_error_code", "delivery_status_error",
		"post_id", "post_url", "post_preview_url", "post_preview_permalink", "post_username", "post_caption",
		"source_external_id",
		"reply_to_msgid", "forward_msgid", "forward_conversation_id")
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
