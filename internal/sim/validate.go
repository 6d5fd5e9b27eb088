package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// invalidError is a payload refusal: 400 INVALID_DATA with "<field>: <reason>".
type invalidError struct {
	Field  string
	Reason string
}

func (e *invalidError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) *invalidError {
	return &invalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// obj is a decoded JSON object; numbers stay json.Number so that the exact
// JSON type can be checked (the Chats API is strictly typed: 1639604761.0 or
// "1639604761" is not an int).
type obj map[string]any

func decodeObject(body []byte, field string) (obj, *invalidError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalid(field, "invalid JSON: %v", err)
	}
	if dec.More() {
		return nil, invalid(field, "invalid JSON: data after the top-level value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(field, "must be a JSON object")
	}
	return m, nil
}

// object returns the nested object at key; required says whether absence is an error.
func (o obj) object(path, key string, required bool) (obj, *invalidError) {
	v, ok := o[key]
	if !ok || v == nil {
		if required {
			return nil, invalid(join(path, key), "required")
		}
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid(join(path, key), "must be an object")
	}
	return m, nil
}

// str returns the string at key. required means present and non-empty.
func (o obj) str(path, key string, required bool) (string, *invalidError) {
	v, ok := o[key]
	if !ok || v == nil {
		if required {
			return "", invalid(join(path, key), "required")
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid(join(path, key), "must be a string")
	}
	if required && strings.TrimSpace(s) == "" {
		return "", invalid(join(path, key), "must not be empty")
	}
	return s, nil
}

// integer returns the integer at key; present reports whether it was there.
func (o obj) integer(path, key string, required bool) (n int64, present bool, err *invalidError) {
	v, ok := o[key]
	if !ok || v == nil {
		if required {
			return 0, false, invalid(join(path, key), "required")
		}
		return 0, false, nil
	}
	num, ok := v.(json.Number)
	if !ok {
		return 0, true, invalid(join(path, key), "must be an integer")
	}
	i, perr := strconv.ParseInt(num.String(), 10, 64)
	if perr != nil {
		return 0, true, invalid(join(path, key), "must be an integer, got %s", num)
	}
	return i, true, nil
}

func (o obj) number(path, key string) (float64, *invalidError) {
	v, ok := o[key]
	if !ok || v == nil {
		return 0, invalid(join(path, key), "required")
	}
	num, ok := v.(json.Number)
	if !ok {
		return 0, invalid(join(path, key), "must be a number")
	}
	f, err := num.Float64()
	if err != nil {
		return 0, invalid(join(path, key), "must be a number")
	}
	return f, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var messageTypes = map[string]bool{
	"text": true, "contact": true, "file": true, "video": true, "picture": true,
	"voice": true, "audio": true, "sticker": true, "location": true,
}

var needsFile = map[string]bool{"file": true, "video": true, "picture": true}

// newMessage is what the simulator keeps of a valid new_message payload.
type newMessage struct {
	raw            json.RawMessage
	msgID          string
	conversationID string
	timestamp      int64
	msecTimestamp  int64
	silent         bool
	sender         participant
	receiver       *participant
	message        obj
}

type participant struct {
	ID, RefID, Name, Avatar string
}

// parseNewMessage validates a new_message request body against the documented
// rules and returns the first violation, naming the field.
func parseNewMessage(body []byte) (*newMessage, *invalidError) {
	top, ierr := decodeObject(body, "body")
	if ierr != nil {
		return nil, ierr
	}
	et, ierr := top.str("", "event_type", true)
	if ierr != nil {
		return nil, ierr
	}
	if et != "new_message" {
		return nil, invalid("event_type", "unsupported value %q (the simulator handles new_message)", et)
	}
	p, ierr := top.object("", "payload", true)
	if ierr != nil {
		return nil, ierr
	}
	const pp = "payload"
	m := &newMessage{}
	m.raw, _ = json.Marshal(p)
	if raw, ok := rawField(body, "payload"); ok {
		m.raw = raw
	}
	if m.msgID, ierr = p.str(pp, "msgid", true); ierr != nil {
		return nil, ierr
	}
	if m.conversationID, ierr = p.str(pp, "conversation_id", true); ierr != nil {
		return nil, ierr
	}
	if _, ierr = p.str(pp, "conversation_ref_id", false); ierr != nil {
		return nil, ierr
	}
	if m.timestamp, _, ierr = p.integer(pp, "timestamp", true); ierr != nil {
		return nil, ierr
	}
	if m.msecTimestamp, _, ierr = p.integer(pp, "msec_timestamp", true); ierr != nil {
		return nil, ierr
	}
	if m.timestamp < 0 {
		return nil, invalid(pp+".timestamp", "must not be negative")
	}
	if m.msecTimestamp < 0 {
		return nil, invalid(pp+".msec_timestamp", "must not be negative")
	}
	// The documentation defines msec_timestamp as "the same time in
	// milliseconds"; a mismatch is a client bug that would misorder the chat.
	if m.msecTimestamp/1000 != m.timestamp {
		return nil, invalid(pp+".msec_timestamp", "is %d, not the same time as timestamp %d", m.msecTimestamp, m.timestamp)
	}
	sv, ok := p["silent"]
	if !ok || sv == nil {
		return nil, invalid(pp+".silent", "required")
	}
	if m.silent, ok = sv.(bool); !ok {
		return nil, invalid(pp+".silent", "must be a boolean")
	}
	sender, ierr := p.object(pp, "sender", true)
	if ierr != nil {
		return nil, ierr
	}
	if m.sender, ierr = parseParticipant(sender, pp+".sender"); ierr != nil {
		return nil, ierr
	}
	receiver, ierr := p.object(pp, "receiver", false)
	if ierr != nil {
		return nil, ierr
	}
	if receiver != nil {
		r, ierr := parseParticipant(receiver, pp+".receiver")
		if ierr != nil {
			return nil, ierr
		}
		m.receiver = &r
		// An outgoing message is authored by a Kommo user or the channel bot,
		// which the API knows only by its amojo id.
		if m.sender.RefID == "" {
			return nil, invalid(pp+".sender.ref_id", "required when receiver is set (outgoing message)")
		}
	}
	if src, ierr := p.object(pp, "source", false); ierr != nil {
		return nil, ierr
	} else if src != nil {
		ext, ierr := src.str(pp+".source", "external_id", true)
		if ierr != nil {
			return nil, ierr
		}
		if len(ext) > 40 || !printableASCII(ext) {
			return nil, invalid(pp+".source.external_id", "must be at most 40 printable ASCII characters")
		}
	}
	msg, ierr := p.object(pp, "message", true)
	if ierr != nil {
		return nil, ierr
	}
	if ierr = validateMessage(msg, pp+".message"); ierr != nil {
		return nil, ierr
	}
	m.message = msg
	return m, nil
}

func parseParticipant(o obj, path string) (participant, *invalidError) {
	var p participant
	var ierr *invalidError
	if p.ID, ierr = o.str(path, "id", true); ierr != nil {
		return p, ierr
	}
	if p.Name, ierr = o.str(path, "name", true); ierr != nil {
		return p, ierr
	}
	if p.RefID, ierr = o.str(path, "ref_id", false); ierr != nil {
		return p, ierr
	}
	if p.Avatar, ierr = o.str(path, "avatar", false); ierr != nil {
		return p, ierr
	}
	if _, ierr = o.str(path, "profile_link", false); ierr != nil {
		return p, ierr
	}
	prof, ierr := o.object(path, "profile", false)
	if ierr != nil {
		return p, ierr
	}
	if prof != nil {
		for _, k := range []string{"phone", "email"} {
			if _, ierr = prof.str(path+".profile", k, false); ierr != nil {
				return p, ierr
			}
		}
	}
	return p, nil
}

func validateMessage(msg obj, path string) *invalidError {
	typ, ierr := msg.str(path, "type", true)
	if ierr != nil {
		return ierr
	}
	if !messageTypes[typ] {
		return invalid(path+".type", "unknown type %q (want one of text, contact, file, video, picture, voice, audio, sticker, location)", typ)
	}
	text, ierr := msg.str(path, "text", false)
	if ierr != nil {
		return ierr
	}
	if typ == "text" && strings.TrimSpace(text) == "" {
		return invalid(path+".text", "required for type text")
	}
	for _, k := range []string{"media", "sticker_id"} {
		if _, ierr := msg.str(path, k, false); ierr != nil {
			return ierr
		}
	}
	if d, present, ierr := msg.integer(path, "media_duration", false); ierr != nil {
		return ierr
	} else if present && d < 0 {
		return invalid(path+".media_duration", "must not be negative")
	}
	name, ierr := msg.str(path, "file_name", false)
	if ierr != nil {
		return ierr
	}
	size, sizePresent, ierr := msg.integer(path, "file_size", false)
	if ierr != nil {
		return ierr
	}
	if sizePresent && size < 0 {
		return invalid(path+".file_size", "must not be negative")
	}
	if needsFile[typ] {
		if strings.TrimSpace(name) == "" {
			return invalid(path+".file_name", "required for type %s", typ)
		}
		if !sizePresent {
			return invalid(path+".file_size", "required for type %s", typ)
		}
	}
	loc, ierr := msg.object(path, "location", typ == "location")
	if ierr != nil {
		return ierr
	}
	if loc != nil {
		lat, ierr := loc.number(path+".location", "lat")
		if ierr != nil {
			return ierr
		}
		if lat < -90 || lat > 90 {
			return invalid(path+".location.lat", "must be in [-90, 90], got %g", lat)
		}
		lon, ierr := loc.number(path+".location", "lon")
		if ierr != nil {
			return ierr
		}
		if lon < -180 || lon > 180 {
			return invalid(path+".location.lon", "must be in [-180, 180], got %g", lon)
		}
	}
	contact, ierr := msg.object(path, "contact", typ == "contact")
	if ierr != nil {
		return ierr
	}
	if contact != nil {
		for _, k := range []string{"name", "phone"} {
			if _, ierr := contact.str(path+".contact", k, true); ierr != nil {
				return ierr
			}
		}
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// rawField returns the exact bytes of a top-level field of a JSON object, so
// the ledger keeps the payload as the client sent it.
func rawField(body []byte, key string) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, false
	}
	v, ok := m[key]
	return v, ok
}

// chatRequest is a valid create-chat body.
type chatRequest struct {
	conversationID string
	user           participant
	phone, email   string
}

func parseCreateChat(body []byte) (*chatRequest, *invalidError) {
	top, ierr := decodeObject(body, "body")
	if ierr != nil {
		return nil, ierr
	}
	c := &chatRequest{}
	if c.conversationID, ierr = top.str("", "conversation_id", true); ierr != nil {
		return nil, ierr
	}
	u, ierr := top.object("", "user", true)
	if ierr != nil {
		return nil, ierr
	}
	if c.user, ierr = parseParticipant(u, "user"); ierr != nil {
		return nil, ierr
	}
	if prof, _ := u.object("user", "profile", false); prof != nil {
		c.phone, _ = prof.str("", "phone", false)
		c.email, _ = prof.str("", "email", false)
	}
	if src, ierr := top.object("", "source", false); ierr != nil {
		return nil, ierr
	} else if src != nil {
		ext, ierr := src.str("source", "external_id", true)
		if ierr != nil {
			return nil, ierr
		}
		if len(ext) > 40 || !printableASCII(ext) {
			return nil, invalid("source.external_id", "must be at most 40 printable ASCII characters")
		}
	}
	return c, nil
}
