package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/kommo-import/kommo-import/wire"
)

// csvDecoder reads RFC 4180 CSV with a header row. The separator is ',', ';'
// or TAB: Excel's "sep=X" first line names it; otherwise it is the one that
// splits the header into the most column names it knows (Excel writes ';'
// wherever the decimal mark is a comma). It splits records itself
// rather than through encoding/csv so that it can cap a record's size, skip an
// oversized or malformed record and carry on at the next one with exact line
// numbers and byte offsets, and keep the record's bytes as read for rejects.
// Like encoding/csv it drops a leading BOM, accepts LF or CRLF, turns CRLF
// inside quoted fields into LF and skips empty lines.
type csvDecoder struct {
	br     *bufio.Reader
	max    int
	line   int64 // lines consumed
	offset int64 // bytes consumed
	rec    []byte
	field  []byte   // unescaped quoted fields; never reallocated mid-record
	cells  [][]byte // the record's fields, pointing into rec or field
	sep    byte
	plan   columnPlan
	b      builder

	headerLine int64           // where the header row is
	headerKeys []string        // its names, trimmed and lower-cased
	names      map[string]bool // every name a header row may hold, lower-cased
}

var bom = []byte{0xEF, 0xBB, 0xBF}

func newCSV(br *bufio.Reader, spec Spec) (*csvDecoder, error) {
	d := &csvDecoder{br: br, max: spec.MaxRecordBytes, sep: ','}
	d.b.tr = rulesOf(spec)
	if head, _ := br.Peek(3); bytes.Equal(head, bom) {
		br.Discard(3)
		d.offset = 3
	}
	// Names a header may hold; the header's own are added below.
	d.names = make(map[string]bool, len(canonicalSet)+len(spec.ColumnMap)+len(spec.IgnoreColumns))
	for c := range canonicalSet {
		d.names[c] = true
	}
	for _, t := range spec.ColumnMap {
		d.names[strings.ToLower(strings.TrimSpace(t))] = true
	}
	for _, c := range spec.IgnoreColumns {
		d.names[strings.ToLower(strings.TrimSpace(c))] = true
	}
	var header []string
	first, hinted := true, false
	for header == nil {
		d.headerLine = d.line + 1
		pos, tooLarge, err := d.readRecord()
		if err == io.EOF {
			return nil, errors.New("empty CSV: no header row")
		}
		if err != nil {
			return nil, err
		}
		if tooLarge {
			return nil, fmt.Errorf("line %d: header row longer than %d bytes", pos.Line, d.max)
		}
		if len(pos.Raw) == 0 || isLineBreak(pos.Raw) {
			continue
		}
		if sep, ok := sepHint(pos.Raw); ok && first {
			d.sep, hinted, first = sep, true, false
			continue
		}
		first = false
		if !hinted {
			d.sep = d.detectSep(pos.Raw)
		}
		if err := d.split(pos.Raw); err != nil {
			return nil, fmt.Errorf("line %d: header: %w", pos.Line, err.Err)
		}
		header = make([]string, len(d.cells))
		for i, c := range d.cells {
			header[i] = string(c)
		}
	}
	plan, err := planColumns(header, spec, false)
	if err != nil {
		return nil, err
	}
	d.plan = plan
	for _, h := range header {
		k := strings.ToLower(strings.TrimSpace(h))
		d.headerKeys = append(d.headerKeys, k)
		d.names[k] = true
	}
	return d, nil
}

func (d *csvDecoder) Close() error { return nil }

// sepHint recognises Excel's "sep=X" first line (also quoted, as some tools
// write it).
func sepHint(rec []byte) (byte, bool) {
	rec = bytes.TrimRight(rec, "\r\n")
	if len(rec) == 7 && rec[0] == '"' && rec[6] == '"' {
		rec = rec[1:6]
	}
	if len(rec) != 5 || !strings.EqualFold(string(rec[:4]), "sep=") {
		return 0, false
	}
	switch c := rec[4]; {
	case c == '"', c == '\r', c == '\n', c >= utf8.RuneSelf:
		return 0, false
	default:
		return c, true
	}
}

// detectSep picks the separator that splits the header row into the most
// names of columns; on a tie (or none at all) the earlier of ',', ';', TAB.
func (d *csvDecoder) detectSep(header []byte) byte {
	best, bestN := byte(','), -1
	for _, sep := range []byte{',', ';', '\t'} {
		d.sep = sep
		if d.split(header) != nil {
			continue
		}
		n := 0
		for _, c := range d.cells {
			if d.isName(c) {
				n++
			}
		}
		if n > bestN {
			best, bestN = sep, n
		}
	}
	return best
}

// isName reports whether a cell is a column name (see headerLike), without
// allocating.
func (d *csvDecoder) isName(c []byte) bool {
	var buf [128]byte
	c = bytes.TrimSpace(c)
	if len(c) == 0 || len(c) > len(buf) {
		return false
	}
	for i, b := range c {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		buf[i] = b
	}
	return d.names[string(buf[:len(c)])]
}

func isLineBreak(b []byte) bool { return string(b) == "\n" || string(b) == "\r\n" }

func (d *csvDecoder) Next(_ context.Context, p *wire.Payload) (Position, error) {
	for {
		pos, tooLarge, err := d.readRecord()
		if err != nil {
			return pos, err
		}
		if tooLarge {
			return pos, &LineError{Err: fmt.Errorf("%w: record of more than %d bytes", ErrTooLarge, d.max)}
		}
		if isLineBreak(pos.Raw) {
			continue
		}
		// A BOM starts any record that began a file: two exports joined
		// with cat put the second one's in the middle.
		pos.Raw = bytes.TrimPrefix(pos.Raw, bom)
		if le := d.split(pos.Raw); le != nil {
			return pos, le
		}
		if d.headerLike() {
			if d.sameHeader() {
				return pos, &LineError{Err: fmt.Errorf("%w: skipped; the rows after it are read with the columns of line %d", ErrSecondHeader, d.headerLine)}
			}
			return pos, &ReadError{Err: fmt.Errorf("%w with other columns than the header on line %d: "+
				"import the files one at a time, or give them the same columns in the same order", ErrSecondHeader, d.headerLine)}
		}
		if len(d.cells) != len(d.plan.names) {
			return pos, &LineError{Err: fmt.Errorf("%d fields, the header has %d", len(d.cells), len(d.plan.names))}
		}
		d.b.reset()
		for i, c := range d.cells {
			// A cell of only spaces is as absent as an empty one.
			if canon := d.plan.canon[i]; canon != "" && len(c) > 0 && !isBlankBytes(c) {
				if err := d.b.set(canon, string(c)); err != nil {
					return pos, err
				}
			}
		}
		if err := d.b.finish(); err != nil {
			return pos, err
		}
		*p = d.b.p
		return pos, nil
	}
}

// headerLike reports whether every cell of the record is a column name (of
// the header, canonical, mapped or ignored): a header row, not data. A data
// row fails at its first cell, on one map lookup without allocation.
func (d *csvDecoder) headerLike() bool {
	if len(d.cells) < 2 {
		return false
	}
	for _, c := range d.cells {
		if !d.isName(c) {
			return false
		}
	}
	return true
}

// sameHeader reports whether a header-like record repeats the header.
func (d *csvDecoder) sameHeader() bool {
	if len(d.cells) != len(d.headerKeys) {
		return false
	}
	for i, c := range d.cells {
		if !strings.EqualFold(string(bytes.TrimSpace(c)), d.headerKeys[i]) {
			return false
		}
	}
	return true
}

// CSV scanning states, enough to know whether a line break ends the record.
const (
	stFieldStart = iota
	stUnquoted
	stQuoted
	stAfterQuote // a quote inside a quoted field: closes it, or starts ""
)

// readRecord reads one record's bytes, line break included: lines are added
// until a line break falls outside quotes. Past the cap it keeps reading to the
// record's end but holds only MaxRawBytes, and reports tooLarge.
func (d *csvDecoder) readRecord() (pos Position, tooLarge bool, err error) {
	pos = Position{Line: d.line + 1, Offset: d.offset}
	d.rec = d.rec[:0]
	if cap(d.rec) > 1<<20 {
		d.rec = nil
	}
	state := stFieldStart
	size := 0
	for {
		chunk, err := d.br.ReadSlice('\n')
		size += len(chunk)
		d.offset += int64(len(chunk))
		switch {
		case tooLarge:
		case len(d.rec)+len(chunk) > d.max:
			tooLarge = true
			d.rec = append(d.rec, chunk[:min(len(chunk), max(0, MaxRawBytes-len(d.rec)))]...)
		default:
			d.rec = append(d.rec, chunk...)
		}
		state = scanCSV(state, chunk, d.sep)
		if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
			d.line++
			if state != stQuoted {
				pos.Raw = d.rec
				return pos, tooLarge, nil
			}
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		case io.EOF:
			pos.Raw = d.rec
			if size == 0 {
				return pos, false, io.EOF
			}
			d.line++ // the last line, without a line break
			return pos, tooLarge, nil
		default:
			return pos, false, err
		}
	}
}

// scanCSV advances the quote state over b.
func scanCSV(state int, b []byte, sep byte) int {
	for i := 0; i < len(b); {
		switch state {
		case stQuoted:
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				return stQuoted
			}
			i += j + 1
			state = stAfterQuote
			continue
		case stUnquoted:
			j := bytes.IndexByte(b[i:], sep)
			if j < 0 {
				return stUnquoted
			}
			i += j + 1
			state = stFieldStart
			continue
		case stFieldStart:
			switch b[i] {
			case '"':
				state = stQuoted
			case sep:
			default:
				state = stUnquoted
			}
		case stAfterQuote:
			switch b[i] {
			case '"':
				state = stQuoted
			case sep:
				state = stFieldStart
			default:
				state = stUnquoted
			}
		}
		i++
	}
	return state
}

// split parses one record (line break included) into d.cells.
func (d *csvDecoder) split(rec []byte) *LineError {
	if n := len(rec); n > 0 && rec[n-1] == '\n' {
		rec = rec[:n-1]
		if n := len(rec); n > 0 && rec[n-1] == '\r' {
			rec = rec[:n-1]
		}
	}
	if cap(d.field) < len(rec) {
		d.field = make([]byte, 0, len(rec))
	}
	d.field = d.field[:0]
	d.cells = d.cells[:0]
	for pos := 0; ; {
		col := len(d.cells) + 1
		if pos < len(rec) && rec[pos] == '"' {
			pos++
			start := len(d.field)
			for {
				j := bytes.IndexByte(rec[pos:], '"')
				if j < 0 {
					return &LineError{Err: fmt.Errorf("field %d: quoted field not closed before the end of the file", col)}
				}
				d.appendQuoted(rec[pos : pos+j])
				pos += j + 1
				if pos < len(rec) && rec[pos] == '"' {
					d.field = append(d.field, '"')
					pos++
					continue
				}
				break
			}
			d.cells = append(d.cells, d.field[start:len(d.field):len(d.field)])
			if pos == len(rec) {
				return nil
			}
			if rec[pos] != d.sep {
				return &LineError{Err: fmt.Errorf(`field %d: extraneous or missing " in quoted field`, col)}
			}
			pos++
			continue
		}
		end := len(rec)
		if j := bytes.IndexByte(rec[pos:], d.sep); j >= 0 {
			end = pos + j
		}
		cell := rec[pos:end]
		if bytes.IndexByte(cell, '"') >= 0 {
			return &LineError{Err: fmt.Errorf(`field %d: bare " in a field that is not quoted`, col)}
		}
		d.cells = append(d.cells, cell)
		if end == len(rec) {
			return nil
		}
		pos = end + 1
	}
}

// appendQuoted appends part of a quoted field, turning CRLF into LF as
// encoding/csv does.
func (d *csvDecoder) appendQuoted(b []byte) {
	for {
		j := bytes.Index(b, []byte("\r\n"))
		if j < 0 {
			d.field = append(d.field, b...)
			return
		}
		d.field = append(d.field, b[:j]...)
		d.field = append(d.field, '\n')
		b = b[j+2:]
	}
}
