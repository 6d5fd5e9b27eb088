package sources

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/kommo-import/kommo-import/wire"
)

// jsonlDecoder reads one JSON object a line: a whole new_message event or the
// bare payload. Lines are read with ReadSlice, so a line that fits the buffer
// is not copied; a longer one is gathered up to the cap and, beyond it,
// skipped without being held.
type jsonlDecoder struct {
	br     *bufio.Reader
	max    int
	line   int64 // lines consumed
	offset int64 // bytes consumed
	buf    []byte
	ev     jsonLine
	ks     keyScan
	// unknown are the paths of the last record's keys that are not part of
	// the payload schema (see unknown.go); valid until the next call.
	unknown []string
}

func (d *jsonlDecoder) unknownFields() []string { return d.unknown }

func newJSONL(br *bufio.Reader, max int) *jsonlDecoder {
	return &jsonlDecoder{br: br, max: max}
}

// bare lets jsonLine embed the payload's fields at the top level while also
// having a "payload" member.
type bare = wire.Payload

type jsonLine struct {
	EventType *string       `json:"event_type"`
	Payload   *wire.Payload `json:"payload"`
	bare
}

func (d *jsonlDecoder) Close() error { return nil }

func (d *jsonlDecoder) Next(_ context.Context, p *wire.Payload) (Position, error) {
	for {
		pos := Position{Line: d.line + 1, Offset: d.offset}
		line, size, err := d.readLine()
		if size == 0 && err == io.EOF {
			return pos, io.EOF
		}
		if err != nil && err != io.EOF && !errors.Is(err, ErrTooLarge) {
			return pos, err
		}
		d.line++
		pos.Raw = line
		if errors.Is(err, ErrTooLarge) {
			return pos, &LineError{Err: fmt.Errorf("%w: line of %d bytes, the limit is %d", ErrTooLarge, size, d.max)}
		}
		// A BOM starts any line that began a file: two exports joined with
		// cat put the second one's in the middle.
		line = bytes.TrimPrefix(bytes.TrimRight(line, "\r\n"), bom)
		pos.Raw = line
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return pos, d.decode(line, p)
	}
}

// readLine returns the next line with its terminator, and its full size. Past
// the cap it returns the first MaxRawBytes only, with ErrTooLarge.
func (d *jsonlDecoder) readLine() ([]byte, int64, error) {
	chunk, err := d.br.ReadSlice('\n')
	size := int64(len(chunk))
	if err != bufio.ErrBufferFull {
		d.offset += size
		if len(chunk) > d.max {
			return chunk[:min(len(chunk), MaxRawBytes)], size, ErrTooLarge
		}
		return chunk, size, err
	}
	if cap(d.buf) > 1<<20 { // do not keep a huge line's buffer for the rest of the file
		d.buf = nil
	}
	d.buf = append(d.buf[:0], chunk...)
	tooLarge := len(d.buf) > d.max
	if tooLarge {
		d.buf = d.buf[:min(len(d.buf), MaxRawBytes)]
	}
	for err == bufio.ErrBufferFull {
		chunk, err = d.br.ReadSlice('\n')
		size += int64(len(chunk))
		switch {
		case tooLarge:
		case len(d.buf)+len(chunk) > d.max:
			tooLarge = true
			if len(d.buf) > MaxRawBytes {
				d.buf = d.buf[:MaxRawBytes]
			}
		default:
			d.buf = append(d.buf, chunk...)
		}
	}
	d.offset += size
	if err != nil && err != io.EOF {
		return nil, size, err
	}
	if tooLarge {
		return d.buf, size, ErrTooLarge
	}
	return d.buf, size, err
}

func (d *jsonlDecoder) decode(line []byte, p *wire.Payload) error {
	*p = wire.Payload{}
	d.unknown = nil
	if !utf8.Valid(line) {
		return &LineError{Err: fmt.Errorf("%w at byte %d", ErrInvalidUTF8, invalidUTF8At(line)+1)}
	}
	if at := loneSurrogate(line); at >= 0 {
		// encoding/json would turn it into U+FFFD, silently changing the text.
		return &LineError{Err: fmt.Errorf("%w: unpaired UTF-16 surrogate escape at byte %d", ErrInvalidUTF8, at+1)}
	}
	d.ev = jsonLine{}
	if err := json.Unmarshal(line, &d.ev); err != nil {
		le := jsonError(err, line)
		// A value of the wrong type leaves the rest decoded: the msgid
		// tells the record when a later export rejects it again.
		if d.ev.Payload != nil {
			le.MsgID = d.ev.Payload.MsgID
		} else {
			le.MsgID = d.ev.bare.MsgID
		}
		return le
	}
	switch {
	case d.ev.EventType != nil && *d.ev.EventType != wire.EventNewMessage:
		return fieldErr("event_type", "%q: only %s events are imported", *d.ev.EventType, wire.EventNewMessage)
	case d.ev.Payload != nil:
		*p = *d.ev.Payload
		d.unknown = d.ks.scan(line, eventSchema, "")
	case d.ev.EventType != nil:
		return &LineError{Field: "payload", Err: ErrRequired}
	default:
		*p = d.ev.bare
		d.unknown = d.ks.scan(line, bareSchema, "payload.")
	}
	return nil
}

// oneObjectHint ends the reason of a line that looks like part of a JSON
// array or of a pretty-printed object.
const oneObjectHint = ": JSONL needs one JSON object per line (jq -c . file)"

// jsonError turns an encoding/json error into a LineError naming the field.
func jsonError(err error, line []byte) *LineError {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		hint := ""
		if t := bytes.TrimSpace(line); se.Offset >= int64(len(line)) && len(t) > 0 && (t[0] == '{' || t[0] == '[') || fragment(t) {
			hint = oneObjectHint
		}
		return &LineError{Err: fmt.Errorf("invalid JSON at byte %d: %s%s", se.Offset, se.Error(), hint)}
	case errors.As(err, &te):
		field := strings.TrimPrefix(strings.TrimPrefix(te.Field, "payload."), "bare.")
		if field == "" {
			if te.Value == "array" {
				return &LineError{Err: fmt.Errorf("want a JSON object, got an array%s", oneObjectHint)}
			}
			return &LineError{Err: fmt.Errorf("want a JSON object, got %s", te.Value)}
		}
		return fieldErr(field, "got JSON %s, want %s", te.Value, jsonKind(te.Type))
	}
	return &LineError{Err: fmt.Errorf("invalid JSON: %w", err)}
}

// fragment reports a line that only makes sense inside pretty-printed JSON:
// a closing bracket, or a lone "key": value.
func fragment(t []byte) bool {
	switch string(bytes.TrimRight(t, ",")) {
	case "}", "]", "{", "[":
		return true
	}
	return len(t) > 0 && t[0] == '"' && bytes.Contains(t, []byte(`":`))
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return "an object"
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// loneSurrogate returns the offset of a \uD800-\uDFFF escape that is not part
// of a high+low pair, or -1. Such escapes are how JavaScript writes a cut
// emoji; decoding them would replace the text with U+FFFD.
func loneSurrogate(b []byte) int {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u`))
		if j < 0 {
			return -1
		}
		j += i
		i = j + 2
		// An even number of backslashes before this one means it is escaped itself.
		bs := 0
		for k := j - 1; k >= 0 && b[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 1 {
			continue
		}
		v, ok := hex4(b, j+2)
		if !ok || v < 0xD800 || v > 0xDFFF {
			continue
		}
		if v >= 0xDC00 { // low surrogate without a high one before it
			return j
		}
		if j+12 > len(b) || b[j+6] != '\\' || b[j+7] != 'u' {
			return j
		}
		if lo, ok := hex4(b, j+8); !ok || lo < 0xDC00 || lo > 0xDFFF {
			return j
		}
		i = j + 12
	}
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
