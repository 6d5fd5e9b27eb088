package telegram

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// tgMessage is one element of a chat's "messages" as Telegram Desktop
// writes it (TD-JSON SerializeMessage). Fields whose type changed between
// versions are decoded loosely.
type tgMessage struct {
	ID             flexInt         `json:"id"`
	Type           string          `json:"type"` // message, service, unsupported
	Date           string          `json:"date"` // local time of the exporting machine, no offset
	DateUnixtime   flexInt         `json:"date_unixtime"`
	From           *string         `json:"from"`
	FromID         flexID          `json:"from_id"`
	ForwardedFrom  json.RawMessage `json:"forwarded_from"` // a name, or null for a hidden one; absent: not forwarded
	ReplyTo        flexInt         `json:"reply_to_message_id"`
	ReplyToPeer    flexID          `json:"reply_to_peer_id"`
	Photo          *string         `json:"photo"`
	PhotoFileSize  flexInt         `json:"photo_file_size"`
	File           *string         `json:"file"`
	FileName       string          `json:"file_name"`
	FileSize       flexInt         `json:"file_size"`
	MediaType      string          `json:"media_type"`
	Duration       flexInt         `json:"duration_seconds"`
	StickerEmoji   string          `json:"sticker_emoji"`
	Contact        *tgContact      `json:"contact_information"`
	Location       json.RawMessage `json:"location_information"`
	PlaceName      string          `json:"place_name"`
	Poll           json.RawMessage `json:"poll"`
	GameTitle      string          `json:"game_title"`
	Invoice        json.RawMessage `json:"invoice_information"`
	Text           json.RawMessage `json:"text"`
	TextEntities   json.RawMessage `json:"text_entities"`
	RichMessage    json.RawMessage `json:"rich_message"`
	EditedUnixtime flexInt         `json:"edited_unixtime"`
}

type tgContact struct {
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	PhoneNumber string `json:"phone_number"`
}

type tgLocation struct {
	Latitude  *float64 `json:"latitude"`
	Longitude *float64 `json:"longitude"`
}

// flexInt is a number written as a JSON number or as a decimal string
// ("date_unixtime": "1710428531"); null or absent is 0, and set says
// whether it was there.
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	f.v, f.set = v, true
	return nil
}

// flexID is a peer id: "user123456789" (since Telegram Desktop 2.x), or a
// bare number in older exports, which means a user.
type flexID string

func (f *flexID) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexID(s)
	default:
		if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
			return fmt.Errorf("%s is not a peer id", b)
		}
		*f = flexID("user" + string(b))
	}
	return nil
}

// text is the message's text: the joined text_entities where the export has
// them (always an array of {type, text}), else "text" (a string, or an array
// of strings and {type, text} objects, tdesktop#25000), else the strings of
// a rich_message.
func (m *tgMessage) text() (string, error) {
	if isArray(m.TextEntities) {
		var parts []struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(m.TextEntities, &parts); err != nil {
			return "", fieldError("text_entities", err)
		}
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String(), nil
	}
	switch {
	case len(m.Text) > 0 && m.Text[0] == '"':
		var s string
		if err := json.Unmarshal(m.Text, &s); err != nil {
			return "", fieldError("text", err)
		}
		return s, nil
	case isArray(m.Text):
		var parts []json.RawMessage
		if err := json.Unmarshal(m.Text, &parts); err != nil {
			return "", fieldError("text", err)
		}
		var b strings.Builder
		for _, p := range parts {
			if len(p) > 0 && p[0] == '"' {
				var s string
				if err := json.Unmarshal(p, &s); err != nil {
					return "", fieldError("text", err)
				}
				b.WriteString(s)
				continue
			}
			var o struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(p, &o); err != nil {
				return "", fieldError("text", err)
			}
			b.WriteString(o.Text)
		}
		return b.String(), nil
	case len(m.Text) > 0 && string(m.Text) != "null":
		return "", fieldError("text", fmt.Errorf("neither a string nor an array: %.40s", m.Text))
	case len(m.RichMessage) > 0:
		var v any
		if err := json.Unmarshal(m.RichMessage, &v); err != nil {
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

func isArray(b json.RawMessage) bool { return len(b) > 0 && b[0] == '[' }

// location is the message's point, if it has a valid one.
func (m *tgMessage) location() (*tgLocation, error) {
	if len(m.Location) == 0 || string(m.Location) == "null" {
		return nil, nil
	}
	var l tgLocation
	if err := json.Unmarshal(m.Location, &l); err != nil {
		return nil, fieldError("location_information", err)
	}
	if l.Latitude == nil || l.Longitude == nil {
		return nil, nil
	}
	return &l, nil
}

// forwardedFrom says whether the message was forwarded, and from whom (""
// for a hidden account).
func (m *tgMessage) forwardedFrom() (string, bool) {
	if len(m.ForwardedFrom) == 0 {
		return "", false
	}
	var s string
	_ = json.Unmarshal(m.ForwardedFrom, &s) // null: a hidden account
	return strings.TrimSpace(s), true
}

// fieldErr is a decoding error of one field of a message.
type fieldErr struct {
	Field string
	Err   error
}

func (e *fieldErr) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldErr) Unwrap() error { return e.Err }

func fieldError(field string, err error) error { return &fieldErr{field, err} }

// decodeMessage decodes raw (a message object as the file holds it) into m,
// repairing the known invalid JSON first when it does not decode as it
// stands. A failure is a *posError at the offending place: its offset is
// from the start of raw, and its line relative to raw's first line.
func decodeMessage(raw []byte, m *tgMessage, scratch *[]byte) error {
	*m = tgMessage{}
	err := json.Unmarshal(raw, m)
	if err == nil {
		return nil
	}
	fixed, edits, changed := repair((*scratch)[:0], raw)
	*scratch = fixed
	if changed {
		*m = tgMessage{}
		if err = json.Unmarshal(fixed, m); err == nil {
			return nil
		}
	}
	return locate(raw, err, edits)
}

// locate turns a decoding error into a *posError within raw (Offset -1
// when the decoder does not say where).
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
