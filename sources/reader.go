package sources

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/kommo-import/kommo-import/wire"
)

// Decoder is one input format's half of a Reader: it turns the input into
// payloads and knows where each starts. Validation, user mapping,
// duplicates and counting are the Reader's (NewReader), so every format
// gets them the same; a format in a package of its own (sources/telegram,
// ...) implements Decoder and returns NewReader's Reader.
type Decoder interface {
	// Next resets p and decodes the next record into it. A bad record is a
	// *LineError (Field and Err only; the Reader fills in the rest); io.EOF
	// ends the input; any other error is fatal (a *ReadError for a file that
	// cannot be read on). pos.Raw is valid until the next call.
	Next(ctx context.Context, p *wire.Payload) (pos Position, err error)
	Close() error
}

// placeNamer is a decoder that reads several files as one source (a folder
// of chat exports), whose positions run on from file to file: Place names
// the file and its own line a source line falls in ("WhatsApp Chat with
// Anna.txt, line 17"), or "" where the source line says it all. A rejected
// record's reason ends with it, so a person finds the record; its Line stays
// the source's, which is what a run checkpoints and keys rejects by.
type placeNamer interface{ Place(line int64) string }

// unknownNamer is a decoder that can name the keys of its last record that
// are not part of the payload schema (JSONL, postgres payload columns).
type unknownNamer interface{ unknownFields() []string }

// Position is where a record starts in its input.
type Position struct {
	Line   int64  // 1-based line (a row number, a message's index: what names it to a person)
	Offset int64  // byte offset in the decompressed input, 0 where there is none
	Raw    []byte // the record as read, for a rejected record's report
}

// Reader yields the validated records of one source. It is not safe for
// concurrent use.
type Reader struct {
	name      string
	dec       Decoder
	now       func() time.Time
	resumable bool
	bytesRead *atomic.Int64 // bytes of the stored input read so far
	closers   []io.Closer

	filter      *recordFilter // Spec.Filter; nil: every record
	mediaText   bool          // Spec.MediaMissing == MediaMissingText
	mediaHosted bool          // Spec.MediaHosted
	strict      bool          // Spec.Strict
	unk         unknownNamer
	unknown     map[string]int64
	skipped     map[string]int64 // the Reader's own Stats.Skipped counts (exports.go)
	media       *localMedia      // CSV and JSONL: local media paths (localmedia.go)

	seed  maphash.Seed
	seen  map[uint64]seenMsg // msgid hash -> first occurrence, packed
	convs map[uint64]struct{}
	stats Stats
	p     wire.Payload

	// Agents mapped to Kommo users (users.go); nil users: no mapping.
	users     *UserMap
	unmatched map[string]*UnmatchedAgent
}

// seenMsg is all that is kept per message besides its msgid hash: 32 bits
// of content hash (enough to tell a conflicting duplicate from a repeat; a
// false "repeat" needs a 1 in 4 billion coincidence on a msgid that was
// already reused) and the first line, capped at 2^32-1. Eight bytes plus an
// eight-byte key keep a million messages in about 30 MB of map.
type seenMsg uint64

func packSeen(content uint64, line int64) seenMsg {
	return seenMsg(content<<32 | uint64(min(max(line, 0), math.MaxUint32)))
}

func (s seenMsg) content() uint64 { return uint64(s) >> 32 }
func (s seenMsg) line() int64     { return int64(uint32(s)) }

// Open opens the source spec names: a CSV, JSONL or PostgreSQL source (the
// formats of other packages open through NewReader). For files it reads
// nothing yet except the CSV header, so a bad header (unknown columns,
// nothing for msgid) is an error here, before any record. For postgres it
// connects and runs the query.
func Open(ctx context.Context, spec Spec) (*Reader, error) {
	if err := spec.Check(); err != nil {
		return nil, err
	}
	if spec.MaxRecordBytes <= 0 {
		spec.MaxRecordBytes = DefaultMaxRecordBytes
	}
	r := newReader(spec)
	switch spec.Kind {
	case KindPostgres:
		dec, err := openPostgres(ctx, spec)
		if err != nil {
			return nil, err
		}
		r.name, r.dec, r.unk = KindPostgres, dec, dec
		return r, nil
	case KindCSV, KindJSONL:
	default:
		return nil, fmt.Errorf("source: kind %q is read by its own package, not sources.Open", spec.Kind)
	}
	in, err := r.openFile(spec)
	if err != nil {
		return nil, err
	}
	r.media = newLocalMedia(spec.Path, spec.MediaMaxSize)
	if err := checkText(in, r.name); err != nil {
		r.Close()
		return nil, err
	}
	switch spec.Kind {
	case KindJSONL:
		if err := checkJSONL(in, r.name); err != nil {
			r.Close()
			return nil, err
		}
		dec := newJSONL(in, spec.MaxRecordBytes)
		r.dec, r.unk = dec, dec
	case KindCSV:
		r.dec, err = newCSV(in, spec)
		if err != nil {
			r.Close()
			var re *ReadError
			if errors.As(err, &re) {
				return nil, re
			}
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
	}
	return r, nil
}

// NewReader wraps a format's decoder in a Reader: the user mapping, the
// media rule, validation, duplicate detection and the counts of spec apply
// to its records as to every other format's. name names the input in
// messages; resumable says whether reading it again from the start yields
// the same records at the same positions (see Resumable). The Reader closes
// dec, then closers (in reverse order), on Close.
func NewReader(spec Spec, name string, dec Decoder, resumable bool, closers ...io.Closer) *Reader {
	r := newReader(spec)
	r.name, r.dec, r.resumable = name, dec, resumable
	r.closers = closers
	return r
}

func newReader(spec Spec) *Reader {
	r := &Reader{
		now:         spec.Now,
		seed:        maphash.MakeSeed(),
		seen:        make(map[uint64]seenMsg),
		convs:       make(map[uint64]struct{}),
		users:       spec.Users, // users.go
		mediaText:   spec.MediaMissing == MediaMissingText,
		mediaHosted: spec.MediaHosted,
		filter:      compileFilter(spec.Filter, spec.Location),
		strict:      spec.Strict,
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// openFile opens the file (or stdin), counting the bytes read and
// decompressing gzip, which it recognises by its magic bytes.
func (r *Reader) openFile(spec Spec) (*bufio.Reader, error) {
	var src io.Reader
	if spec.Path == "-" {
		r.name = "stdin"
		src = spec.Stdin
		if src == nil {
			src = os.Stdin
		}
	} else {
		f, err := os.Open(spec.Path)
		if err != nil {
			return nil, fmt.Errorf("open source: %w", err)
		}
		r.name, r.resumable = spec.Path, true
		r.closers = append(r.closers, f)
		src = f
	}
	r.bytesRead = new(atomic.Int64)
	br := bufio.NewReaderSize(&guardReader{r: &countingReader{r: src, n: r.bytesRead}, name: r.name, n: r.bytesRead}, 256<<10)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		r.Close()
		return nil, (&guardReader{name: r.name, n: r.bytesRead, gzip: true}).wrap(err)
	}
	r.closers = append(r.closers, zr)
	return bufio.NewReaderSize(&guardReader{r: zr, name: r.name, n: r.bytesRead, gzip: true}, 256<<10), nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// guardReader turns every read error but a clean io.EOF into a *ReadError
// naming the file. An early end of a gzip stream (io.ErrUnexpectedEOF from
// compress/gzip) becomes ErrTruncated: passed up as it is, it would read as a
// dropped connection to whoever classifies errors.
type guardReader struct {
	r    io.Reader
	name string
	n    *atomic.Int64 // bytes of the stored input read so far
	gzip bool          // r decompresses
}

func (g *guardReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = g.wrap(err)
	}
	return n, err
}

func (g *guardReader) wrap(err error) error {
	var re *ReadError
	if errors.As(err, &re) {
		return re // from the layer below
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		what := "the input"
		if g.gzip {
			what = "the gzip stream"
		}
		return &ReadError{Name: g.name, Err: fmt.Errorf("%w: %s ends early after %d bytes", ErrTruncated, what, g.n.Load())}
	}
	return &ReadError{Name: g.name, Err: err} // compress/gzip and flate say "gzip: ..." themselves
}

// Next returns the next valid record. A bad record comes back as a *LineError:
// record it and call Next again, the stream goes on. A msgid seen before with
// identical content is skipped (Stats().Duplicates); with different content it
// is a *LineError wrapping ErrConflictingDuplicate that names the first line.
// io.EOF ends the input; any other error is fatal: a *ReadError for a file
// that cannot be read on (cut short: ErrTruncated; corrupt; disk), or a
// database error for postgres.
func (r *Reader) Next(ctx context.Context) (Record, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		pos, err := r.dec.Next(ctx, &r.p)
		if err != nil {
			return Record{}, r.decodeError(err, pos)
		}
		if r.filter != nil && !r.filter.keep(r.p.ConversationID, r.p.MsecTimestamp, r.p.Timestamp) {
			r.stats.Filtered++ // outside the subset: neither checked nor rejected
			continue
		}
		if r.unk != nil {
			if paths := r.unk.unknownFields(); len(paths) > 0 {
				r.countUnknown(paths)
				if r.strict {
					return Record{}, r.rejectRead(unknownReject(paths[0]), pos)
				}
			}
		}
		// users.go: sender.ref_id of outgoing messages, before validation.
		if r.users != nil {
			if le := r.mapUser(pos.Line); le != nil {
				return Record{}, r.rejectRead(le, pos)
			}
		}
		if r.media != nil {
			placeholders := r.stats.MediaPlaceholders
			if le := r.media.resolve(r.p.Message, r.mediaText, &r.stats); le != nil {
				return Record{}, r.rejectRead(le, pos)
			}
			if r.stats.MediaPlaceholders > placeholders {
				r.skip(SkipMediaWithoutFile) // as the exports count it: in the run's summary and status
			}
		}
		r.localMedia(r.p.Message) // exports.go
		if err := Validate(&r.p, r.now()); err != nil {
			var le *LineError
			if errors.As(err, &le) {
				le.MsgID = r.p.MsgID
			}
			return Record{}, r.decodeError(err, pos)
		}
		idKey := r.hashString(r.p.MsgID)
		content := r.hashContent(&r.p)
		entry := packSeen(content, pos.Line)
		if first, ok := r.seen[idKey]; ok {
			if first.content() == entry.content() {
				r.stats.Duplicates++
				continue
			}
			return Record{}, r.rejectRead(fieldErr("msgid", "%w of line %d: the same msgid %q with different content",
				ErrConflictingDuplicate, first.line(), r.p.MsgID), pos)
		}
		r.seen[idKey] = entry
		r.convs[r.hashString(r.p.ConversationID)] = struct{}{}
		r.stats.Records++
		return Record{Payload: r.p, Line: pos.Line, Offset: pos.Offset, Raw: bytes.Clone(pos.Raw)}, nil
	}
}

// decodeError turns a decoder's or Validate's error into what Next returns:
// io.EOF, a rejected record, or a fatal error. It is a function of its own
// so that the targets of errors.As live on the heap only when there is an
// error, not once a record.
func (r *Reader) decodeError(err error, pos Position) error {
	if err == io.EOF {
		return io.EOF
	}
	var le *LineError
	if errors.As(err, &le) {
		return r.reject(le, pos)
	}
	var re *ReadError
	if errors.As(err, &re) {
		if re.Name == "" {
			re.Name = r.name
		}
		if re.Line == 0 {
			re.Line = pos.Line
		}
		return re
	}
	return fmt.Errorf("read %s at line %d: %w", r.name, pos.Line, err)
}

// rejectRead rejects the record just decoded (r.p), naming its msgid: a
// later run tells the same record rejected again by it.
func (r *Reader) rejectRead(le *LineError, pos Position) *LineError {
	le.MsgID = r.p.MsgID
	return r.reject(le, pos)
}

func (r *Reader) reject(le *LineError, pos Position) *LineError {
	r.stats.Rejected++
	le.File = r.name
	if le.Line == 0 {
		le.Line = pos.Line
	}
	if pn, ok := r.dec.(placeNamer); ok {
		if place := pn.Place(le.Line); place != "" {
			le.Err = fmt.Errorf("%w (in %s)", le.Err, place)
		}
	}
	raw := pos.Raw
	if len(raw) > MaxRawBytes {
		raw = raw[:MaxRawBytes]
	}
	le.Raw = bytes.Clone(raw)
	return le
}

// countUnknown counts one record's unknown paths.
func (r *Reader) countUnknown(paths []string) {
	if r.unknown == nil {
		r.unknown = map[string]int64{}
	}
	for _, p := range paths {
		if _, ok := r.unknown[p]; ok || len(r.unknown) < MaxUnknownFields {
			r.unknown[p]++
		}
	}
}

// Stats returns the counts so far; after io.EOF they are final.
func (r *Reader) Stats() Stats {
	s := r.stats
	if len(r.unknown) > 0 {
		s.UnknownFields = maps.Clone(r.unknown)
	}
	s.Skipped = r.skippedStats()
	s.Conversations = int64(len(r.convs))
	if r.bytesRead != nil {
		s.BytesRead = r.bytesRead.Load()
	}
	return s
}

// CSVSeparator is the field separator of a CSV source (',', ';' or TAB, as
// detected or as Excel's sep= line said), 0 for any other format: a file
// written for the operator beside the source (rejects) uses the same.
func (r *Reader) CSVSeparator() rune {
	if d, ok := r.dec.(*csvDecoder); ok {
		return rune(d.sep)
	}
	return 0
}

// Name is the file as given, "stdin", or "postgres".
func (r *Reader) Name() string { return r.name }

// Resumable reports whether reading the source again from the start yields
// the same records in the same order, so a resumed import may skip what it
// already staged by position (line number). True for files. False for stdin,
// which cannot be read twice, and for postgres, --source-query and
// --source-table alike: a table is read in msgid order, but a row inserted
// since the last read sorts in anywhere and shifts every row after it, so
// skipping by row number would skip rows. Such a source is read again from
// the start, and msgids keep the records already staged from being staged
// twice.
func (r *Reader) Resumable() bool { return r.resumable }

// Close releases the file or database connection.
func (r *Reader) Close() error {
	var errs []error
	if r.dec != nil {
		errs = append(errs, r.dec.Close())
		r.dec = nil
	}
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i].Close())
	}
	r.closers = nil
	return errors.Join(errs...)
}

func (r *Reader) hashString(s string) uint64 { return maphash.String(r.seed, s) }

// hashContent hashes every field of a normalised payload (wire.Walk visits
// them all). Strings are followed by 0xff, which valid UTF-8 never contains,
// so field boundaries are unambiguous; an optional object's presence is
// hashed too, so a nil object and an empty one differ.
func (r *Reader) hashContent(p *wire.Payload) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	var b [8]byte
	wire.Walk(p, func(f wire.Field) bool {
		switch f.Kind {
		case wire.KindString:
			h.WriteString(f.Str)
			h.WriteByte(0xff)
		case wire.KindFloat:
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(f.Float))
			h.Write(b[:])
		case wire.KindBool:
			if f.Bool {
				h.WriteByte(1)
			} else {
				h.WriteByte(0)
			}
		default: // KindInt, KindPresence
			binary.LittleEndian.PutUint64(b[:], uint64(f.Int))
			h.Write(b[:])
		}
		return true
	})
	return h.Sum64()
}
