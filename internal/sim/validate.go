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

// array returns the JSON array at key; required says whether absence is an error.
func (o obj) array(path, key string, required bool) ([]any, *invalidError) {
	v, ok := o[key]
	if !ok || v == nil {
		if required {
			return nil, invalid(join(path, key), "required")
		}
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, invalid(join(path, key), "must be an array")
	}
	return a, nil
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
	if _, ierr = parseReplyTo(p, pp); ierr != nil {
		return nil, ierr
	}
	if _, ierr = parseForwards(p, pp); ierr != nil {
		return nil, ierr
	}
	return m, nil
}

// parseReplyTo checks reply_to: {message: embedded_message}.
func parseReplyTo(p obj, pp string) (string, *invalidError) {
	rt, ierr := p.object(pp, "reply_to", false)
	if ierr != nil || rt == nil {
		return "", ierr
	}
	em, ierr := rt.object(pp+".reply_to", "message", true)
	if ierr != nil {
		return "", ierr
	}
	return parseEmbedded(em, pp+".reply_to.message")
}

// parseForwards checks forwards: {messages: [embedded_message],
// conversation_id?, conversation_ref_id?}; the API takes one message for now.
func parseForwards(p obj, pp string) (string, *invalidError) {
	fw, ierr := p.object(pp, "forwards", false)
	if ierr != nil || fw == nil {
		return "", ierr
	}
	path := pp + ".forwards"
	msgs, ierr := fw.array(path, "messages", true)
	if ierr != nil {
		return "", ierr
	}
	switch {
	case len(msgs) == 0:
		return "", invalid(path+".messages", "must hold 1 message")
	case len(msgs) > 1:
		return "", invalid(path+".messages", "at most 1 message for now, got %d", len(msgs))
	}
	em, ok := msgs[0].(map[string]any)
	if !ok {
		return "", invalid(path+".messages[0]", "must be an object")
	}
	for _, k := range []string{"conversation_id", "conversation_ref_id"} {
		if _, ierr := fw.str(path, k, false); ierr != nil {
			return "", ierr
		}
	}
	return parseEmbedded(em, path+".messages[0]")
}

// parseEmbedded checks a quoted or forwarded message and returns its
// reference. With an id the API looks the message up; without one it can
// only show what the payload holds, so the message itself must be there.
func parseEmbedded(o obj, path string) (string, *invalidError) {
	id, ierr := o.str(path, "id", false)
	if ierr != nil {
		return "", ierr
	}
	msgid, ierr := o.str(path, "msgid", false)
	if ierr != nil {
		return "", ierr
	}
	if strings.TrimSpace(id) == "" && strings.TrimSpace(msgid) == "" {
		return "", invalid(path+".id", "required (id or msgid)")
	}
	typ, ierr := o.str(path, "type", false)
	if ierr != nil {
		return "", ierr
	}
	if typ != "" && !messageTypes[typ] {
		return "", invalid(path+".type", "unknown type %q", typ)
	}
	text, ierr := o.str(path, "text", false)
	if ierr != nil {
		return "", ierr
	}
	for _, k := range []string{"timestamp", "msec_timestamp", "file_size", "media_duration"} {
		n, _, ierr := o.integer(path, k, false)
		if ierr != nil {
			return "", ierr
		}
		if n < 0 {
			return "", invalid(path+"."+k, "must not be negative")
		}
	}
	if _, ierr := o.str(path, "file_name", false); ierr != nil {
		return "", ierr
	}
	sender, ierr := o.object(path, "sender", false)
	if ierr != nil {
		return "", ierr
	}
	if sender != nil {
		for _, k := range []string{"id", "ref_id", "name"} {
			if _, ierr := sender.str(path+".sender", k, false); ierr != nil {
				return "", ierr
			}
		}
	}
	if loc, ierr := o.object(path, "location", false); ierr != nil {
		return "", ierr
	} else if loc != nil {
		for _, k := range []string{"lat", "lon"} {
			if _, ierr := loc.number(path+".location", k); ierr != nil {
				return "", ierr
			}
		}
	}
	if c, ierr := o.object(path, "contact", false); ierr != nil {
		return "", ierr
	} else if c != nil {
		for _, k := range []string{"name", "phone"} {
			if _, ierr := c.str(path+".contact", k, true); ierr != nil {
				return "", ierr
			}
		}
	}
	if id != "" {
		return id, nil
	}
	// Named by msgid only: the documented fields the API then needs.
	if typ == "" {
		return "", invalid(path+".type", "required without id")
	}
	if typ == "text" && strings.TrimSpace(text) == "" {
		return "", invalid(path+".text", "required for type text")
	}
	for _, k := range []string{"timestamp", "msec_timestamp"} {
		if _, present, _ := o.integer(path, k, false); !present {
			return "", invalid(path+"."+k, "required without id")
		}
	}
	if sender == nil {
		return "", invalid(path+".sender", "required without id")
	}
	if sid, _ := sender.str("", "id", false); sid == "" {
		if ref, _ := sender.str("", "ref_id", false); ref == "" {
			return "", invalid(path+".sender.id", "required without id (or sender.ref_id)")
		}
	}
	return msgid, nil
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
	if sp, ierr := msg.object(path, "shared_post", false); ierr != nil {
		return ierr
	} else if sp != nil {
		if ierr := validateSharedPost(sp, path+".shared_post"); ierr != nil {
			return ierr
		}
	}
	if ds, ierr := msg.object(path, "delivery_status", false); ierr != nil {
		return ierr
	} else if ds != nil {
		if ierr := validateDeliveryStatus(ds, path+".delivery_status"); ierr != nil {
			return ierr
		}
	}
	return nil
}

// validateSharedPost checks {url, preview_link?, preview_permalink?, type: "post", site_name?}.
func validateSharedPost(sp obj, path string) *invalidError {
	if _, ierr := sp.str(path, "url", true); ierr != nil {
		return ierr
	}
	typ, ierr := sp.str(path, "type", true)
	if ierr != nil {
		return ierr
	}
	if typ != "post" {
		return invalid(path+".type", "must be \"post\", got %q", typ)
	}
	for _, k := range []string{"preview_link", "preview_permalink", "site_name"} {
		if _, ierr := sp.str(path, k, false); ierr != nil {
			return ierr
		}
	}
	return nil
}

// validateDeliveryStatus checks {status_code, error_code, error}: status 1
// delivered, 2 read, -1 error; an error needs error_code 901-905, and 905
// ("other") an error text.
func validateDeliveryStatus(ds obj, path string) *invalidError {
	code, _, ierr := ds.integer(path, "status_code", true)
	if ierr != nil {
		return ierr
	}
	if code != 1 && code != 2 && code != -1 {
		return invalid(path+".status_code", "must be 1, 2 or -1, got %d", code)
	}
	ecode, _, ierr := ds.integer(path, "error_code", code == -1)
	if ierr != nil {
		return ierr
	}
	if code == -1 && (ecode < 901 || ecode > 905) {
		return invalid(path+".error_code", "must be 901 to 905, got %d", ecode)
	}
	if _, ierr := ds.str(path, "error", code == -1 && ecode == 905); ierr != nil {
		return ierr
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
