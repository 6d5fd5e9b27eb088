package telegram

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// tgMessage is one element of a chat's "messages" as Telegram Desktop
// writes it (TD-JSON SerializeMessage), as parseMessage reads it. Fields
// whose type changed between versions are read loosely.
type tgMessage struct {
	ID             flexInt
	Type           string // message, service, unsupported
	date           []byte // "date" as written: local time of the exporting machine, no offset
	DateUnixtime   flexInt
	EditedUnixtime flexInt
	From           *string // nil: null (a nameless peer) or absent
	FromID         flexID
	Forwarded      bool   // forwarded_from is there
	ForwardedFrom  string // "" for a hidden account (null)
	ReplyTo        flexInt
	ReplyToPeer    flexID
	Photo          *string
	PhotoFileSize  flexInt
	File           *string
	FileName       string
	FileSize       flexInt
	MediaType      string
	Duration       flexInt
	StickerEmoji   string
	Contact        *tgContact
	HasLocation    bool        // location_information is there
	Location       *tgLocation // nil when null or incomplete
	PlaceName      string
	Poll           bool
	GameTitle      string
	Invoice        bool
	TextKind       textKind
	text           []byte // "text" as written (a string or an array), valid while the message's bytes are
	textAt         int    // its offset in them
	HasEntities    bool
	Entities       string // text_entities, joined
	Rich           []byte // rich_message as written, valid while the message's bytes are
}

type textKind uint8

const (
	textNone   textKind = iota // absent or null
	textString                 // a string or an array, joined
)

type tgContact struct {
	FirstName   string
	LastName    string
	PhoneNumber string
}

type tgLocation struct {
	Latitude  *float64
	Longitude *float64
}

// flexInt is a number written as a JSON number or as a decimal string
// ("date_unixtime": "1710428531"); null or absent is 0, and set says
// whether it was there.
type flexInt struct {
	v   int64
	set bool
}

// UnmarshalJSON reads a flexInt for encoding/json (the sections around the
// messages: personal_information, contacts, a chat's id).
func (f *flexInt) UnmarshalJSON(b []byte) error {
	p := parser{b: b}
	v, err := p.whole(nil)
	if err == nil && p.peek() != 0 {
		err = fmt.Errorf("%s is not a whole number", b)
	}
	*f = v
	return err
}

// flexID is a peer id: "user123456789" (since Telegram Desktop 2.x), or a
// bare number in older exports, which means a user.
type flexID string

// Text is the message's text: the joined text_entities where the export has
// them (always an array of {type, text}), else "text" (a string, or an array
// of strings and {type, text} objects, tdesktop#25000), else the strings of
// a rich_message.
func (m *tgMessage) Text(p *parser, raw []byte) (string, error) {
	switch {
	case m.HasEntities:
		return m.Entities, nil
	case m.TextKind == textString:
		// Decoded here: most messages have text_entities, which say the same.
		p.b, p.i = m.text, 0
		var s string
		var err error
		if p.peek() == '"' {
			s, err = p.str()
		} else {
			s, err = p.textParts("text")
		}
		var pe *posError
		if errors.As(err, &pe) { // place it in the message's bytes
			pe.Offset += int64(m.textAt)
			pe.Line += int64(bytes.Count(raw[:m.textAt], nl))
		}
		return s, err
	case len(m.Rich) > 0:
		var v any
		if err := json.Unmarshal(m.Rich, &v); err != nil {
			return "", fieldError("rich_message", err)
		}
		var b strings.Builder
		richText(&b, v)
		return strings.TrimSpace(b.String()), nil
	}
	return "", nil
}

// richText collects the "text" strings of a rich_message in order, one
// block a line (its structure is not documented; mlomb/chat-analytics#142).
func richText(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		if s, ok := v["text"].(string); ok {
			b.WriteString(s)
		} else if t, ok := v["text"]; ok {
			richText(b, t)
		}
		for _, k := range []string{"blocks", "items", "content", "children"} {
			if c, ok := v[k]; ok {
				richText(b, c)
			}
		}
	case []any:
		for _, e := range v {
			richText(b, e)
			if _, ok := e.(map[string]any); ok && b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
				b.WriteByte('\n')
			}
		}
	case string:
		b.WriteString(v)
	}
}

// Date is "date" as written, "" when absent.
func (m *tgMessage) Date(p *parser) string {
	if len(m.date) == 0 {
		return ""
	}
	p.b, p.i = m.date, 0
	s, _, _ := p.strOrNull()
	return s
}

// location is the message's point, if it has a valid one.
func (m *tgMessage) location() *tgLocation { return m.Location }

// forwardedFrom says whether the message was forwarded, and from whom (""
// for a hidden account).
func (m *tgMessage) forwardedFrom() (string, bool) {
	return strings.TrimSpace(m.ForwardedFrom), m.Forwarded
}

// fieldErr is a decoding error of one field of a message.
type fieldErr struct {
	Field string
	Err   error
}

func (e *fieldErr) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldErr) Unwrap() error { return e.Err }

func fieldError(field string, err error) error { return &fieldErr{field, err} }

// locate turns an encoding/json error into a *posError within raw (Offset
// -1 when the decoder does not say where), mapping offsets in repaired bytes
// back through edits.
func locate(raw []byte, err error, edits []edit) error {
	var off int64 = -1
	var field string
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off, field = te.Offset, te.Field
		err = fmt.Errorf("%s: %s is not %s", te.Field, te.Value, kindName(te.Type.Kind().String()))
	}
	if off < 0 {
		return &posError{Offset: -1, Err: err}
	}
	off = min(origOffset(edits, off), int64(len(raw)))
	pe := &posError{Offset: off, Line: int64(bytes.Count(raw[:off], nl)), Err: err}
	if field != "" {
		return &fieldErr{Field: field, Err: pe}
	}
	return pe
}

func kindName(k string) string {
	switch k {
	case "int64", "int", "float64":
		return "a number"
	case "ptr", "struct":
		return "an object"
	}
	return "a " + k
}
