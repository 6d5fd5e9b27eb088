package sources

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/kommo-import/kommo-import/wire"
)

// Record is one valid message read from a source.
type Record struct {
	// Payload is validated and normalised: both timestamps set, Silent false
	// (a silent flag in the input is ignored: the importer decides it).
	Payload wire.Payload
	// Line is the 1-based line where the record starts (CSV: the first line
	// of a record whose quoted fields span lines; postgres: the row number).
	Line int64
	// Offset is the byte offset of the record's start in the decompressed
	// input; 0 for postgres.
	Offset int64
	// Raw is the record as read: the JSONL line, the CSV record's bytes (with
	// its line breaks), or a postgres row as a JSON object. The caller owns it.
	Raw []byte
}

// MaxRawBytes caps LineError.Raw, so a rejected 30 MiB line does not end up
// whole in a rejects file or table.
const MaxRawBytes = 64 << 10

// Reasons a caller may branch on with errors.Is. Most reasons are plain text:
// they are for the person fixing the file, not for code.
var (
	// ErrRequired: a required field is missing or empty.
	ErrRequired = errors.New("required")
	// ErrTooLarge: the line or record is longer than Spec.MaxRecordBytes.
	ErrTooLarge = errors.New("record too large")
	// ErrConflictingDuplicate: the msgid was seen before with different content.
	ErrConflictingDuplicate = errors.New("conflicting duplicate")
	// ErrInvalidUTF8: a string holds bytes that are not UTF-8; the record is
	// rejected rather than repaired, since repairing would change the text.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrSecondHeader: a CSV holds its header row again further down, as
	// "cat a.csv b.csv" makes. The same columns: the row is a bad record
	// (*LineError) and the rows after it read as before. Other columns: a
	// fatal *ReadError, since every row after it would be read wrongly.
	ErrSecondHeader = errors.New("a second header row (two files joined?)")
	// ErrTruncated: the file ends in the middle of its compressed stream (a
	// cut download or copy). It comes inside a *ReadError.
	ErrTruncated = errors.New("truncated")
)

// ReadError is a fatal error reading a source file (or stdin): the file is
// cut short (ErrTruncated), its gzip data is corrupt, or the disk failed.
// Reader.Next returns it instead of a record; the stream cannot go on. Its
// chain never holds io.EOF or io.ErrUnexpectedEOF, which callers take for a
// clean end and a lost connection.
type ReadError struct {
	Name string // the file as given, or "stdin"
	Line int64  // the line being read when it failed; 0 at open
	Err  error
}

// Error reads "export.jsonl.gz: truncated: the gzip stream ends early after
// 4096 bytes (reading line 37)".
func (e *ReadError) Error() string {
	s := e.Name + ": " + e.Err.Error()
	if e.Line > 0 {
		s += " (reading line " + strconv.FormatInt(e.Line, 10) + ")"
	}
	return s
}

func (e *ReadError) Unwrap() error { return e.Err }

// LineError is one bad record: where it is, which field, and why. Field is the
// payload's JSON path ("message.file_name", "sender.ref_id"), or empty when the
// record as a whole is bad (not JSON, wrong number of CSV fields).
type LineError struct {
	File  string
	Line  int64
	Field string
	Err   error
	// Raw is the record as read, capped at MaxRawBytes.
	Raw []byte
	// MsgID is the record's msgid when it was read far enough to have one
	// (it parsed, and was refused by a later check), as read: it may be
	// the reason itself (too long, not UTF-8). "" otherwise.
	MsgID string
}

// Error reads "orders.csv:17: message.file_name: required for type file".
func (e *LineError) Error() string {
	b := make([]byte, 0, 64)
	if e.File != "" {
		b = append(b, e.File...)
		b = append(b, ':')
	}
	b = strconv.AppendInt(b, e.Line, 10)
	b = append(b, ": "...)
	if e.Field != "" {
		b = append(b, e.Field...)
		b = append(b, ": "...)
	}
	if e.Err != nil {
		b = append(b, e.Err.Error()...)
	}
	return string(b)
}

func (e *LineError) Unwrap() error { return e.Err }

// fieldErr builds the position-less part of a LineError; Reader fills in the rest.
func fieldErr(field string, format string, args ...any) *LineError {
	return &LineError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Stats counts what a Reader has read so far.
type Stats struct {
	Records       int64 // valid records returned by Next
	Rejected      int64 // LineErrors returned by Next
	Duplicates    int64 // repeated msgids with identical content, skipped
	Filtered      int64 // records outside Spec.Filter's subset, skipped (not in Total)
	Conversations int64 // distinct conversation_id among valid records
	BytesRead     int64 // bytes read from the input as stored (compressed for .gz); 0 for postgres
	// UnknownFields counts, per JSON path ("payload.mood",
	// "payload.message.mesage", "payload.forwards.messages[].x"; a key of
	// the event itself has no "payload." prefix), the records carrying a key
	// that is not part of the Chats API payload: it is not sent. JSONL and
	// postgres payload columns only; at most MaxUnknownFields paths; nil
	// when there are none. Stats returns a copy.
	UnknownFields map[string]int64
	// Skipped counts, by reason (the Skip* constants; a format may add its
	// own), what the input held that is not imported as it stands: chats
	// and messages a format skips (group chats, service messages, ...), media
	// without a file, local files sent as text. nil when there is nothing.
	// Stats returns a copy.
	Skipped map[string]int64
	// MediaFiles counts records whose media is a local file beside a CSV or
	// JSONL source, found and within --media-max-size (localmedia.go).
	MediaFiles int64
	// MediaPlaceholders counts records whose local media file could not be
	// sent (missing, empty, too large, ...) and that go out as their text
	// placeholder (--media-missing text).
	MediaPlaceholders int64
}

// Total is every record seen: valid, rejected and skipped duplicates.
func (s Stats) Total() int64 { return s.Records + s.Rejected + s.Duplicates }
