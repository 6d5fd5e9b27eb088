package telegram

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// parser decodes one message object by hand: encoding/json would scan each
// message twice (a validity pass, then reflection), at half the speed a
// several-GB export needs. It reads only the fields a message can become,
// skips the rest, and takes what versions of Telegram Desktop write that
// is not JSON the way fix.go repairs it: \xHH inside strings is U+00HH (an
// escaped backslash followed by x41 stays the text \x41), and a value that
// starts with a byte JSON does not allow is a string to the end of its line
// (4.1.1's unquoted document_id). A duplicate key keeps its last value, as
// encoding/json does. Errors are *posError at the offending byte.
type parser struct {
	b   []byte
	i   int
	buf []byte // scratch for strings with escapes
	// seen holds the short strings messages repeat (types, authors, their
	// ids), so each is allocated once, not once a message.
	seen map[string]string
}

// interned is the string at p, allocated once for all messages.
func (p *parser) interned() (string, bool, error) {
	if p.i < len(p.b) && p.b[p.i] == '"' {
		start := p.i + 1
		j := start
		for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 && p.b[j] < 0x80 && j-start < 64 {
			j++
		}
		if j < len(p.b) && p.b[j] == '"' {
			if s, ok := p.seen[string(p.b[start:j])]; ok {
				p.i = j + 1
				return s, true, nil
			}
		}
	}
	s, ok, err := p.strOrNull()
	if ok && err == nil && len(s) <= 64 {
		if p.seen == nil || len(p.seen) > 4096 {
			p.seen = map[string]string{}
		}
		p.seen[s] = s
	}
	return s, ok, err
}

func (p *parser) errAt(format string, args ...any) error {
	i := min(p.i, len(p.b))
	return &posError{Offset: int64(i), Line: int64(bytes.Count(p.b[:i], nl)), Err: fmt.Errorf(format, args...)}
}

func (p *parser) found() string {
	if p.i >= len(p.b) {
		return "the end of the message"
	}
	return quoteByte(p.b[p.i])
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// object calls field for each key, with p at its value, which field must
// consume.
func (p *parser) object(field func(key []byte) error) error {
	if p.peek() != '{' {
		return p.errAt("want an object {, found %s", p.found())
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return nil
	}
	for {
		if p.peek() != '"' {
			return p.errAt("want a key, found %s", p.found())
		}
		key, err := p.rawString()
		if err != nil {
			return err
		}
		if p.peek() != ':' {
			return p.errAt("want ':' after the key %q, found %s", key, p.found())
		}
		p.i++
		p.ws()
		if err := field(key); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.errAt("want ',' or '}' after the value of %q, found %s", key, p.found())
		}
	}
}

// array calls elem for each element, with p at it.
func (p *parser) array(elem func() error) error {
	if p.peek() != '[' {
		return p.errAt("want an array [, found %s", p.found())
	}
	p.i++
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if err := elem(); err != nil {
			return err
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.errAt("want ',' or ']' in an array, found %s", p.found())
		}
	}
}

// rawString returns a string's bytes without its quotes, undecoded, when it
// has no escapes (keys), else decoded into scratch.
func (p *parser) rawString() ([]byte, error) {
	start := p.i + 1
	j := start
	for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' {
		j++
	}
	if j < len(p.b) && p.b[j] == '"' {
		p.i = j + 1
		return p.b[start:j], nil
	}
	s, err := p.str()
	return []byte(s), err
}

// str decodes the string at p.
func (p *parser) str() (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.errAt("want a string, found %s", p.found())
	}
	start := p.i + 1
	j := start
	for j < len(p.b) && p.b[j] != '"' && p.b[j] != '\\' && p.b[j] >= 0x20 {
		j++
	}
	if j < len(p.b) && p.b[j] == '"' {
		p.i = j + 1
		return validUTF8(string(p.b[start:j])), nil
	}
	out := append(p.buf[:0], p.b[start:j]...)
	for j < len(p.b) {
		c := p.b[j]
		switch {
		case c == '"':
			p.i = j + 1
			p.buf = out
			return validUTF8(string(out)), nil
		case c < 0x20:
			p.i = j
			return "", p.errAt("a control byte %s inside a string", quoteByte(c))
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(p.b) {
			break
		}
		switch e := p.b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
			j += 2
		case 'b':
			out, j = append(out, '\b'), j+2
		case 'f':
			out, j = append(out, '\f'), j+2
		case 'n':
			out, j = append(out, '\n'), j+2
		case 'r':
			out, j = append(out, '\r'), j+2
		case 't':
			out, j = append(out, '\t'), j+2
		case 'x': // Telegram Desktop's \xHH: U+00HH
			if j+3 < len(p.b) && isHex(p.b[j+2]) && isHex(p.b[j+3]) {
				v, _ := strconv.ParseUint(string(p.b[j+2:j+4]), 16, 8)
				out = utf8.AppendRune(out, rune(v))
				j += 4
				continue
			}
			p.i = j
			return "", p.errAt(`\x without two hex digits inside a string`)
		case 'u':
			r, n := p.unicodeEscape(j)
			if n == 0 {
				p.i = j
				return "", p.errAt(`\u without four hex digits inside a string`)
			}
			out = utf8.AppendRune(out, r)
			j += n
		default:
			p.i = j
			return "", p.errAt("an invalid escape \\%c inside a string", e)
		}
	}
	p.i = len(p.b)
	return "", p.errAt("a string without its closing quote")
}

// unicodeEscape decodes \uXXXX at j (and the low half of a surrogate pair
// after it), returning the rune and the bytes read, 0 if it is not one.
func (p *parser) unicodeEscape(j int) (rune, int) {
	hex4 := func(at int) (rune, bool) {
		if at+6 > len(p.b) || p.b[at] != '\\' || p.b[at+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(p.b[at+2:at+6]), 16, 32)
		return rune(v), err == nil
	}
	r, ok := hex4(j)
	if !ok {
		return 0, 0
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(j + 6); ok {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, 12
			}
		}
		return utf8.RuneError, 6
	}
	return r, 6
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// isNull consumes a null.
func (p *parser) isNull() bool {
	if bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return true
	}
	return false
}

// strOrNull is a string, or "" and false for null.
func (p *parser) strOrNull() (string, bool, error) {
	if p.isNull() {
		return "", false, nil
	}
	if p.i < len(p.b) && p.b[p.i] != '"' && !valueStart(p.b[p.i:]) {
		return p.bare(), true, nil
	}
	s, err := p.str()
	return s, err == nil, err
}

// bare reads a value JSON does not allow, to the end of its line, as a
// string (a trailing comma stays for the object).
func (p *parser) bare() string {
	end := p.i
	for end < len(p.b) && p.b[end] != '\n' && p.b[end] != '\r' {
		end++
	}
	v := bytes.TrimRight(p.b[p.i:end], " \t")
	v = bytes.TrimSuffix(v, []byte(","))
	p.i += len(v)
	return validUTF8(string(v))
}

// token is a number or literal's bytes.
func (p *parser) token() []byte {
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return p.b[start:p.i]
		}
		p.i++
	}
	return p.b[start:p.i]
}

// whole is a whole number written as a number or a decimal string; null is
// unset.
func (p *parser) whole(key []byte) (flexInt, error) {
	if p.isNull() {
		return flexInt{}, nil
	}
	at := p.i
	var tok []byte
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, err := p.str()
		if err != nil {
			return flexInt{}, err
		}
		tok = []byte(strings.TrimSpace(s))
	} else {
		tok = p.token()
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		p.i = at
		return flexInt{}, &fieldErr{Field: string(key), Err: p.errAt("%q is not a whole number", tok)}
	}
	return flexInt{v: v, set: true}, nil
}

// float is a number.
func (p *parser) float(key string) (float64, error) {
	at := p.i
	tok := p.token()
	v, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		p.i = at
		return 0, &fieldErr{Field: key, Err: p.errAt("%q is not a number", tok)}
	}
	return v, nil
}

// peerID is "user123", or a bare number (older exports), a user.
func (p *parser) peerID(key []byte) (flexID, error) {
	if p.isNull() {
		return "", nil
	}
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, err := p.str()
		return flexID(s), err
	}
	n, err := p.whole(key)
	if err != nil {
		return "", err
	}
	return flexID("user" + strconv.FormatInt(n.v, 10)), nil
}

// skip consumes any value.
func (p *parser) skip() error {
	switch c := p.peek(); {
	case c == '{':
		return p.object(func([]byte) error { return p.skip() })
	case c == '[':
		return p.array(p.skip)
	case c == '"':
		_, err := p.str()
		return err
	case p.i >= len(p.b):
		return p.errAt("want a value, found the end of the message")
	case valueStart(p.b[p.i:]):
		if len(p.token()) == 0 {
			return p.errAt("want a value, found %s", p.found())
		}
		return nil
	default:
		p.bare()
		return nil
	}
}

// textParts joins the "text" of an array of strings and {type, text}
// objects (text, text_entities).
func (p *parser) textParts(key string) (string, error) {
	var first string
	var b *strings.Builder // from the second part on
	add := func(s string) {
		switch {
		case s == "":
		case first == "" && b == nil:
			first = s
		default:
			if b == nil {
				b = &strings.Builder{}
				b.WriteString(first)
			}
			b.WriteString(s)
		}
	}
	err := p.array(func() error {
		if p.peek() == '"' {
			s, err := p.str()
			add(s)
			return err
		}
		if p.peek() != '{' {
			return &fieldErr{Field: key, Err: p.errAt("want a string or an object, found %s", p.found())}
		}
		return p.object(func(k []byte) error {
			if string(k) != "text" {
				return p.skip()
			}
			s, _, err := p.strOrNull()
			add(s)
			return err
		})
	})
	if b != nil {
		return b.String(), err
	}
	return first, err
}

// parseMessage decodes a message object into m.
func parseMessage(raw []byte, m *tgMessage, p *parser) error {
	*m = tgMessage{}
	p.b, p.i = raw, 0
	err := p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			m.ID, err = p.whole(key)
		case "type":
			m.Type, _, err = p.interned()
		case "date":
			// Read only for exports without date_unixtime (text()).
			at := p.i
			err = p.skip()
			m.date = raw[at:p.i]
		case "date_unixtime":
			m.DateUnixtime, err = p.whole(key)
		case "edited_unixtime":
			m.EditedUnixtime, err = p.whole(key)
		case "from":
			var s string
			var ok bool
			if s, ok, err = p.interned(); ok {
				m.From = &s
			} else {
				m.From = nil
			}
		case "from_id":
			if p.i < len(p.b) && p.b[p.i] == '"' {
				var s string
				s, _, err = p.interned()
				m.FromID = flexID(s)
			} else {
				m.FromID, err = p.peerID(key)
			}
		case "forwarded_from":
			m.Forwarded = true
			m.ForwardedFrom, _, err = p.strOrNull()
		case "reply_to_message_id":
			m.ReplyTo, err = p.whole(key)
		case "reply_to_peer_id":
			m.ReplyToPeer, err = p.peerID(key)
		case "photo":
			var s string
			var ok bool
			if s, ok, err = p.strOrNull(); ok {
				m.Photo = &s
			}
		case "photo_file_size":
			m.PhotoFileSize, err = p.whole(key)
		case "file":
			var s string
			var ok bool
			if s, ok, err = p.strOrNull(); ok {
				m.File = &s
			}
		case "file_name":
			m.FileName, _, err = p.strOrNull()
		case "file_size":
			m.FileSize, err = p.whole(key)
		case "media_type":
			m.MediaType, _, err = p.interned()
		case "duration_seconds":
			m.Duration, err = p.whole(key)
		case "sticker_emoji":
			m.StickerEmoji, _, err = p.strOrNull()
		case "place_name":
			m.PlaceName, _, err = p.strOrNull()
		case "game_title":
			m.GameTitle, _, err = p.strOrNull()
		case "poll":
			m.Poll = !p.isNull()
			if m.Poll {
				err = p.skip()
			}
		case "invoice_information":
			m.Invoice = !p.isNull()
			if m.Invoice {
				err = p.skip()
			}
		case "contact_information":
			if p.isNull() {
				m.Contact = nil
				break
			}
			c := &tgContact{}
			m.Contact = c
			err = p.object(func(k []byte) error {
				var err error
				switch string(k) {
				case "first_name":
					c.FirstName, _, err = p.strOrNull()
				case "last_name":
					c.LastName, _, err = p.strOrNull()
				case "phone_number":
					c.PhoneNumber, _, err = p.strOrNull()
				default:
					err = p.skip()
				}
				return err
			})
		case "location_information":
			m.HasLocation = true
			m.Location = nil
			if p.isNull() {
				break
			}
			var lat, lon *float64
			err = p.object(func(k []byte) error {
				switch string(k) {
				case "latitude":
					v, err := p.float("location_information.latitude")
					lat = &v
					return err
				case "longitude":
					v, err := p.float("location_information.longitude")
					lon = &v
					return err
				}
				return p.skip()
			})
			if lat != nil && lon != nil {
				m.Location = &tgLocation{Latitude: lat, Longitude: lon}
			}
		case "text":
			// Read only when there are no text_entities (text()); checked
			// for its type here.
			m.TextKind = textNone
			at := p.i
			switch c := p.peek(); {
			case c == '"' || c == '[':
				at = p.i
				m.TextKind = textString
				err = p.skip()
				m.text = raw[at:p.i]
				m.textAt = at
			case p.isNull():
			default:
				if err = p.skip(); err == nil {
					p.i = at
					err = &fieldErr{Field: "text", Err: p.errAt("neither a string nor an array: %.40s", p.b[at:])}
				}
			}
		case "text_entities":
			if p.isNull() {
				m.HasEntities = false
				break
			}
			m.HasEntities = true
			m.Entities, err = p.textParts("text_entities")
		case "rich_message":
			at := p.i
			err = p.skip()
			m.Rich = raw[at:p.i]
		default:
			err = p.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if p.peek() != 0 {
		return p.errAt("more after the message's closing }: %s", p.found())
	}
	return nil
}
