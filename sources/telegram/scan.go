package telegram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// scanner walks the structure of a JSON file without decoding it: objects,
// arrays, keys and whole values, knowing the byte offset and line of every
// byte. A value is handed out as the bytes the file holds (decoded by the
// caller with encoding/json) or skipped without being kept, so memory is
// bounded by the largest value kept, whatever the file's size. It can seek
// back to a remembered position, for sections that come in an order it
// cannot use (a re-serialized file with sorted keys).
type scanner struct {
	rd   io.ReadSeeker
	ctx  context.Context
	buf  []byte
	r, w int   // unread bytes: buf[r:w]
	off  int64 // file offset of buf[r]
	line int64 // line of buf[r], from 1
	eof  bool
	err  error // a read error other than io.EOF
	max  int   // the largest value kept (Spec.MaxRecordBytes)
	// big holds the start of a value too large to keep, for the report.
	big []byte
}

const minBuf = 256 << 10

// newScanner reads rd with a buffer of size bytes (minBuf; tests use tiny
// ones to put every boundary in the middle of something).
func newScanner(ctx context.Context, rd io.ReadSeeker, max, size int) *scanner {
	return &scanner{rd: rd, ctx: ctx, buf: make([]byte, size), line: 1, max: max}
}

// mark is a position to come back to.
type mark struct{ off, line int64 }

func (s *scanner) mark() mark { return mark{s.off, s.line} }

// seek moves to m, dropping what is buffered.
func (s *scanner) seek(m mark) error {
	if _, err := s.rd.Seek(m.off, io.SeekStart); err != nil {
		s.err = err
		return err
	}
	s.r, s.w, s.off, s.line, s.eof = 0, 0, m.off, m.line, false
	return nil
}

// fill reads more input after buf[w], first moving the unread bytes to the
// front, and growing the buffer when it is full of them. It reports whether
// it read anything.
func (s *scanner) fill() bool {
	if s.eof || s.err != nil {
		return false
	}
	if s.ctx != nil && s.ctx.Err() != nil {
		s.err = s.ctx.Err()
		return false
	}
	s.shrink()
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:s.w])
		s.r, s.w = 0, n
	}
	if s.w == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	for {
		n, err := s.rd.Read(s.buf[s.w:])
		s.w += n
		if err == io.EOF {
			s.eof = true
		} else if err != nil {
			s.err = err
		}
		if n > 0 || err != nil {
			return n > 0
		}
	}
}

// shrink drops a buffer a huge value grew, once it is consumed.
func (s *scanner) shrink() {
	if len(s.buf) > 4*minBuf && s.w-s.r < minBuf {
		nb := make([]byte, minBuf)
		s.w = copy(nb, s.buf[s.r:s.w])
		s.buf, s.r = nb, 0
	}
}

// advance consumes n buffered bytes.
func (s *scanner) advance(n int) {
	s.line += int64(bytes.Count(s.buf[s.r:s.r+n], nl))
	s.off += int64(n)
	s.r += n
}

var nl = []byte{'\n'}

// peek skips white space (and a byte order mark at the very start) and
// returns the next byte without consuming it; ok is false at the end of the
// input or on a read error (s.err).
func (s *scanner) peek() (byte, bool) {
	for {
		for s.r < s.w {
			switch c := s.buf[s.r]; c {
			case ' ', '\t', '\r':
				s.r++
				s.off++
			case '\n':
				s.r++
				s.off++
				s.line++
			case 0xEF:
				if s.off == 0 {
					if s.w-s.r < 3 && s.fill() {
						continue
					}
					if bytes.HasPrefix(s.buf[s.r:s.w], []byte("\xEF\xBB\xBF")) {
						s.r += 3
						s.off += 3
						continue
					}
				}
				return c, true
			default:
				return c, true
			}
		}
		if !s.fill() {
			return 0, false
		}
	}
}

// errEnd is the end of the input where more was due.
var errEnd = errors.New("the file ends here")

// syntaxErr is a structural error at the scanner's position.
func (s *scanner) syntaxErr(format string, args ...any) error {
	if s.err != nil {
		return s.err
	}
	return &posError{Offset: s.off, Line: s.line, Err: fmt.Errorf(format, args...)}
}

// posError is an error at a place in the file.
type posError struct {
	Offset, Line int64
	Err          error
}

func (e *posError) Error() string {
	return fmt.Sprintf("line %d, byte offset %d: %v", e.Line, e.Offset, e.Err)
}

func (e *posError) Unwrap() error { return e.Err }

// expect consumes the byte c, after white space.
func (s *scanner) expect(c byte, what string) error {
	got, ok := s.peek()
	if !ok {
		return s.syntaxErr("%w: want %s", errEnd, what)
	}
	if got != c {
		return s.syntaxErr("want %s, found %s", what, quoteByte(got))
	}
	s.r++
	s.off++
	return nil
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02X", c)
}

// value is one JSON value as the file holds it.
type value struct {
	raw  []byte // valid until the scanner moves on; the first bytes only when tooBig
	at   mark   // where it starts
	size int64  // its length in the file
	// tooBig: longer than the scanner's max; raw holds its start.
	tooBig bool
	// cut: the input ended inside it (raw holds what there was).
	cut bool
}

// scanValue reads the value starting at the next non-space byte: keep
// leaves its bytes in v.raw, otherwise they are consumed as they are read
// (a skipped chat's messages are never held). Objects and arrays are matched
// bracket for bracket, strings included, so a value that is not valid JSON
// inside is still found whole (the decoder then says what is wrong with it).
// A scalar ends at white space or at , } ] outside a string.
func (s *scanner) scanValue(keep bool) (value, error) {
	first, ok := s.peek()
	if !ok {
		return value{}, s.syntaxErr("%w: want a value", errEnd)
	}
	v := value{at: s.mark()}
	depth, inStr, esc := 0, false, false
	scalar := first != '{' && first != '[' && first != '"'
	i := 0 // bytes of the value at buf[r:], scanned
	done := false
	for {
		b := s.buf[s.r:s.w]
	scan:
		for i < len(b) {
			if esc { // the byte after a backslash
				esc = false
				i++
				continue
			}
			if inStr {
				// Strings are most of the bytes: run to the next quote or backslash.
				for i < len(b) && b[i] != '"' && b[i] != '\\' {
					i++
				}
				if i == len(b) {
					break
				}
				if b[i] == '\\' {
					esc = true
					i++
					continue
				}
				inStr = false
				i++
				if depth == 0 {
					done = true // a string value
					break
				}
				continue
			}
			c := b[i]
			if scalar {
				switch c {
				case ',', '}', ']', ' ', '\n', '\r', '\t', '"':
					done = true
					break scan
				}
				i++
				continue
			}
			i++
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					done = true
					break scan
				}
			}
		}
		if done {
			break
		}
		if !keep && i > 0 {
			s.advance(i)
			v.size += int64(i)
			i = 0
		}
		if keep && i >= s.max {
			// Too big to keep: keep its start for the report, skip the rest.
			s.big = append(s.big[:0], s.buf[s.r:s.r+min(i, maxRaw)]...)
			keep, v.tooBig = false, true
			s.advance(i)
			v.size += int64(i)
			i = 0
		}
		if !s.fill() {
			if !scalar || s.err != nil {
				v.cut = true
			}
			break
		}
	}
	if keep && i > s.max {
		s.big = append(s.big[:0], s.buf[s.r:s.r+min(i, maxRaw)]...)
		v.tooBig = true
	}
	if v.tooBig {
		v.raw = s.big
	} else if keep {
		v.raw = s.buf[s.r : s.r+i]
	}
	if keep || i > 0 {
		s.advance(i)
		v.size += int64(i)
	}
	if v.cut && s.err != nil {
		return v, s.err
	}
	return v, nil
}

// maxRaw caps the start of a too-large value kept for the report
// (sources.MaxRawBytes).
const maxRaw = 64 << 10

// next consumes one byte known to be there (after peek).
func (s *scanner) next() {
	s.r++
	s.off++
}
