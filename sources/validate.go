package sources

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kommo-import/kommo-import/wire"
)

// Plausible time range of a message. Before 2000 is almost always a unit
// mistake (seconds read as milliseconds, or a zero date). The future gets a
// day of grace: exports often store local time as if it were UTC (up to 14
// hours ahead) and clocks drift; a milliseconds value put in a seconds column
// lands thousands of years ahead, far beyond any grace.
var minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const futureGrace = 24 * time.Hour

// Validate checks p against the Chats API's rules for new_message and
// normalises it: it derives timestamp from msec_timestamp or the other way
// round, and clears Silent. It returns nil or a *LineError whose Field is the
// JSON path of the first bad field (File and Line left for the caller).
func Validate(p *wire.Payload, now time.Time) error {
	p.Silent = false
	if err := checkID("conversation_id", p.ConversationID); err != nil {
		return err
	}
	if err := checkID("msgid", p.MsgID); err != nil {
		return err
	}
	if err := checkTime(p, now); err != nil {
		return err
	}
	if err := checkUTF8(p); err != nil {
		return err
	}
	if p.Sender == nil {
		return &LineError{Field: "sender", Err: ErrRequired}
	}
	if err := checkParticipant("sender", p.Sender); err != nil {
		return err
	}
	if p.Receiver != nil {
		if err := checkParticipant("receiver", p.Receiver); err != nil {
			return err
		}
		if p.Sender.RefID == "" {
			return fieldErr("sender.ref_id", "%w for an outgoing message (one with a receiver): the Kommo user's amojo_id or the bot id", ErrRequired)
		}
	}
	if err := checkMessage(p.Message); err != nil {
		return err
	}
	if p.Source != nil {
		if err := checkExternalID(p.Source.ExternalID); err != nil {
			return err
		}
	}
	return checkQuotes(p)
}

// checkQuotes checks reply_to and forwards. An embedded message is named by
// Kommo's id or by a msgid; the importer, not this package, turns a msgid it
// sent into Kommo's id, or drops a quote of a message the export lacks.
// Empty objects say nothing and are dropped.
func checkQuotes(p *wire.Payload) error {
	if rt := p.ReplyTo; rt != nil {
		if emptyEmbedded(&rt.Message) {
			p.ReplyTo = nil
		} else {
			if err := checkEmbedded("reply_to.message", &rt.Message); err != nil {
				return err
			}
			if rt.Message.MsgID == p.MsgID {
				return fieldErr("reply_to.message.msgid", "%q is this message's own msgid: a message cannot quote itself", p.MsgID)
			}
		}
	}
	if fw := p.Forwards; fw != nil {
		if len(fw.Messages) == 0 && fw.ConversationID == "" && fw.ConversationRefID == "" {
			p.Forwards = nil
			return nil
		}
		if len(fw.Messages) != 1 {
			return fieldErr("forwards.messages", "%d messages: the API takes exactly 1", len(fw.Messages))
		}
		if err := checkEmbedded("forwards.messages[0]", &fw.Messages[0]); err != nil {
			return err
		}
		if fw.Messages[0].MsgID == p.MsgID {
			return fieldErr("forwards.messages[0].msgid", "%q is this message's own msgid: a message cannot forward itself", p.MsgID)
		}
		if err := checkOptionalID("forwards.conversation_id", fw.ConversationID); err != nil {
			return err
		}
		if err := checkOptionalID("forwards.conversation_ref_id", fw.ConversationRefID); err != nil {
			return err
		}
	}
	return nil
}

func emptyEmbedded(e *wire.EmbeddedMessage) bool {
	return *e == wire.EmbeddedMessage{} || (*e == wire.EmbeddedMessage{Sender: e.Sender} && *e.Sender == wire.EmbeddedSender{})
}

func checkEmbedded(path string, e *wire.EmbeddedMessage) error {
	if e.ID == "" && e.MsgID == "" {
		return fieldErr(path+".msgid", "%w: the quoted message's msgid, or its Kommo id (id)", ErrRequired)
	}
	if err := checkOptionalID(path+".id", e.ID); err != nil {
		return err
	}
	if err := checkOptionalID(path+".msgid", e.MsgID); err != nil {
		return err
	}
	if e.Type != "" && !knownTypes[e.Type] {
		return fieldErr(path+".type", "unknown type %q (known: %s)", e.Type, knownTypeList)
	}
	if e.FileSize < 0 {
		return fieldErr(path+".file_size", "%d is negative", e.FileSize)
	}
	if e.MediaDuration < 0 {
		return fieldErr(path+".media_duration", "%d is negative", e.MediaDuration)
	}
	if e.Timestamp < 0 || e.MsecTimestamp < 0 {
		return fieldErr(path+".timestamp", "is negative")
	}
	if l := e.Location; l != nil {
		if !(l.Lat >= -90 && l.Lat <= 90) {
			return fieldErr(path+".location.lat", "%v is out of range [-90, 90]", l.Lat)
		}
		if !(l.Lon >= -180 && l.Lon <= 180) {
			return fieldErr(path+".location.lon", "%v is out of range [-180, 180]", l.Lon)
		}
	}
	return nil
}

// checkOptionalID applies checkID's rules to an id that may be absent.
func checkOptionalID(field, s string) error {
	if s == "" {
		return nil
	}
	return checkID(field, s)
}

func checkTime(p *wire.Payload, now time.Time) error {
	switch {
	case p.Timestamp == 0 && p.MsecTimestamp == 0:
		return fieldErr("timestamp", "%w (timestamp or msec_timestamp)", ErrRequired)
	case p.MsecTimestamp == 0:
		if p.Timestamp > math.MaxInt64/1000 || p.Timestamp < 0 {
			return fieldErr("timestamp", "%d is out of range", p.Timestamp)
		}
		p.MsecTimestamp = p.Timestamp * 1000
	case p.Timestamp == 0:
		p.Timestamp = floorDiv(p.MsecTimestamp, 1000)
	case floorDiv(p.MsecTimestamp, 1000) != p.Timestamp:
		return fieldErr("msec_timestamp", "%d (%s) disagrees with timestamp %d (%s)",
			p.MsecTimestamp, fmtTime(time.UnixMilli(p.MsecTimestamp)), p.Timestamp, fmtTime(time.Unix(p.Timestamp, 0)))
	}
	t := time.UnixMilli(p.MsecTimestamp)
	if t.Before(minTime) {
		return fieldErr("timestamp", "%s is before 2000-01-01: implausible for a chat message (wrong unit?)", fmtTime(t))
	}
	if limit := now.Add(futureGrace); t.After(limit) {
		hint := ""
		if p.Timestamp > 1e11 {
			hint = " (milliseconds in the seconds field?)"
		}
		return fieldErr("timestamp", "%s is in the future (now %s)%s", fmtTime(t), fmtTime(now), hint)
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func fmtTime(t time.Time) string {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Sprintf("year %d", y)
	}
	return t.UTC().Format(time.RFC3339)
}

// MaxIDBytes is the longest msgid or conversation_id accepted. Both are keys
// of PostgreSQL btree indexes, whose entries cannot pass about 2.7 KB; one
// longer id would fail the whole staging batch it is in, so it is rejected
// here, on its own line.
const MaxIDBytes = 1000

// checkID applies the rules of a msgid or conversation_id: given, not only
// whitespace (the API refuses it), at most MaxIDBytes, and no NUL, which a
// PostgreSQL text value cannot hold.
func checkID(field, s string) error {
	if err := checkRequired(field, s); err != nil {
		return err
	}
	if len(s) > MaxIDBytes {
		return fieldErr(field, "%d bytes, at most %d allowed (it is a database key)", len(s), MaxIDBytes)
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fieldErr(field, "a NUL character (\\u0000) at byte %d: PostgreSQL text cannot hold it", i+1)
	}
	return nil
}

// checkRequired rejects an empty or whitespace-only value.
func checkRequired(field, s string) error { return checkRequiredIn("", field, s) }

// checkRequiredIn is checkRequired for the field path+field, which it joins
// only for an error: the hot path allocates nothing.
func checkRequiredIn(path, field, s string) error {
	if s == "" {
		return &LineError{Field: path + field, Err: ErrRequired}
	}
	if isBlank(s) {
		return fieldErr(path+field, "%w (only whitespace)", ErrRequired)
	}
	return nil
}

// isBlank reports whether s holds only whitespace. It returns at the first
// other character, so it costs next to nothing on real values.
func isBlank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			if s[i] < utf8.RuneSelf {
				return false
			}
			return strings.TrimSpace(s[i:]) == ""
		}
	}
	return true
}

// isBlankBytes is isBlank for a CSV cell, without copying it.
func isBlankBytes(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r', '\v', '\f':
		default:
			if b[i] < utf8.RuneSelf {
				return false
			}
			return len(bytes.TrimSpace(b[i:])) == 0
		}
	}
	return true
}

func checkParticipant(path string, u *wire.Participant) error {
	// An empty profile ({} or blank values) says nothing: it is not sent.
	if pr := u.Profile; pr != nil {
		if isBlank(pr.Phone) {
			pr.Phone = ""
		}
		if isBlank(pr.Email) {
			pr.Email = ""
		}
		if pr.Phone == "" && pr.Email == "" {
			u.Profile = nil
		}
	}
	if err := checkRequiredIn(path, ".id", u.ID); err != nil {
		return err
	}
	return checkRequiredIn(path, ".name", u.Name)
}

// Types whose message needs file_name and file_size.
var fileTypes = map[string]bool{wire.TypeFile: true, wire.TypeVideo: true, wire.TypePicture: true}

// Types whose message is its media: without a URL Kommo shows a broken
// file. A sticker also shows by its sticker_id.
var mediaTypes = map[string]bool{
	wire.TypeFile: true, wire.TypeVideo: true, wire.TypePicture: true,
	wire.TypeVoice: true, wire.TypeAudio: true, wire.TypeSticker: true,
}

// mediaMissing reports a message that needs media and has none.
func mediaMissing(m *wire.Message) bool {
	if m == nil || !mediaTypes[m.Type] || !isBlank(m.Media) {
		return false
	}
	return m.Type != wire.TypeSticker || isBlank(m.StickerID)
}

// mediaToText turns a message that needs media and has none into a text
// message that says what it was: "[picture: name.jpg] caption", "[voice]".
// The media fields go; a post, shared post or delivery status stays.
// MediaToText turns a media message into the text placeholder that
// --media-missing text sends, "[picture: name.jpg] caption": for the
// importer, whose local file could not be used when the message's turn came.
func MediaToText(m *wire.Message) { mediaToText(m) }

func mediaToText(m *wire.Message) {
	text := "[" + m.Type
	if !isBlank(m.FileName) {
		text += ": " + m.FileName
	}
	text += "]"
	if !isBlank(m.Text) {
		text += " " + m.Text
	}
	*m = wire.Message{Type: wire.TypeText, Text: text, Post: m.Post, SharedPost: m.SharedPost, DeliveryStatus: m.DeliveryStatus}
}

var knownTypes = map[string]bool{
	wire.TypeText: true, wire.TypeContact: true, wire.TypeFile: true,
	wire.TypeVideo: true, wire.TypePicture: true, wire.TypeVoice: true,
	wire.TypeAudio: true, wire.TypeSticker: true, wire.TypeLocation: true,
}

const knownTypeList = "text, contact, file, video, picture, voice, audio, sticker, location"

func checkMessage(m *wire.Message) error {
	if m == nil {
		return &LineError{Field: "message", Err: ErrRequired}
	}
	if m.Type == "" {
		return &LineError{Field: "message.type", Err: ErrRequired}
	}
	if !knownTypes[m.Type] {
		return fieldErr("message.type", "unknown type %q (known: %s)", m.Type, knownTypeList)
	}
	if mediaMissing(m) {
		what := m.Type
		if m.Type == wire.TypeSticker {
			what += " without sticker_id"
		}
		return fieldErr("message.media", "%w for type %s: without the file's URL Kommo shows a broken file; "+
			"give the file's URL, or --media-missing text to send its name as a text message", ErrRequired, what)
	}
	switch {
	case m.Type == wire.TypeText:
		if m.Text == "" {
			return fieldErr("message.text", "%w for type text", ErrRequired)
		}
		if isBlank(m.Text) {
			return fieldErr("message.text", "%w for type text (only whitespace)", ErrRequired)
		}
	case fileTypes[m.Type]:
		if m.FileName == "" {
			return fieldErr("message.file_name", "%w for type %s", ErrRequired, m.Type)
		}
		if m.FileSize == 0 {
			return fieldErr("message.file_size", "%w for type %s", ErrRequired, m.Type)
		}
	case m.Type == wire.TypeLocation:
		if m.Location == nil {
			return fieldErr("message.location", "%w for type location", ErrRequired)
		}
		if lat := m.Location.Lat; !(lat >= -90 && lat <= 90) {
			return fieldErr("message.location.lat", "%v is out of range [-90, 90]", lat)
		}
		if lon := m.Location.Lon; !(lon >= -180 && lon <= 180) {
			return fieldErr("message.location.lon", "%v is out of range [-180, 180]", lon)
		}
	case m.Type == wire.TypeContact:
		if m.Contact == nil || m.Contact.Name == "" {
			return fieldErr("message.contact.name", "%w for type contact", ErrRequired)
		}
		if m.Contact.Phone == "" {
			return fieldErr("message.contact.phone", "%w for type contact", ErrRequired)
		}
	}
	if m.FileSize < 0 {
		return fieldErr("message.file_size", "%d is negative", m.FileSize)
	}
	if m.MediaDuration < 0 {
		return fieldErr("message.media_duration", "%d is negative", m.MediaDuration)
	}
	if m.Post != nil {
		if m.Post.ID == "" {
			return fieldErr("message.post.id", "%w when a post is given", ErrRequired)
		}
		if m.Post.URL == "" {
			return fieldErr("message.post.url", "%w when a post is given", ErrRequired)
		}
	}
	if sp := m.SharedPost; sp != nil {
		switch {
		case *sp == wire.SharedPost{}:
			m.SharedPost = nil
		case isBlank(sp.URL):
			return fieldErr("message.shared_post.url", "%w when a shared post is given", ErrRequired)
		case sp.Type == "":
			sp.Type = wire.SharedPostType
		case sp.Type != wire.SharedPostType:
			return fieldErr("message.shared_post.type", "%q: the only type is %q", sp.Type, wire.SharedPostType)
		}
	}
	if ds := m.DeliveryStatus; ds != nil {
		if *ds == (wire.DeliveryStatus{}) {
			m.DeliveryStatus = nil
		} else if err := checkDeliveryStatus(ds); err != nil {
			return err
		}
	}
	return nil
}

// checkDeliveryStatus applies the API's rules: status 1 (delivered), 2
// (read) or -1 (error), an error code 901-905 with -1, and an error text
// with 905 ("other").
func checkDeliveryStatus(ds *wire.DeliveryStatus) error {
	const path = "message.delivery_status."
	switch ds.StatusCode {
	case wire.StatusDelivered, wire.StatusRead:
		if ds.ErrorCode != 0 || ds.Error != "" {
			return fieldErr(path+"error_code", "only with status_code -1 (error), not %d", ds.StatusCode)
		}
	case wire.StatusError:
		if ds.ErrorCode == 0 {
			return fieldErr(path+"error_code", "%w with status_code -1: 901 user deleted the chat, 902 integration disabled, 903 internal error, "+
				"904 cannot create the conversation, 905 other", ErrRequired)
		}
		if ds.ErrorCode < 901 || ds.ErrorCode > 905 {
			return fieldErr(path+"error_code", "%d: want 901 to 905", ds.ErrorCode)
		}
		if ds.ErrorCode == 905 && isBlank(ds.Error) {
			return fieldErr(path+"error", "%w with error_code 905 (other)", ErrRequired)
		}
	case 0:
		return fieldErr(path+"status_code", "%w when a delivery status is given: 1 delivered, 2 read, -1 error", ErrRequired)
	default:
		return fieldErr(path+"status_code", "%d: want 1 (delivered), 2 (read) or -1 (error)", ds.StatusCode)
	}
	return nil
}

// checkExternalID applies the API's rule for source.external_id: at most 40
// printable ASCII characters.
func checkExternalID(s string) error {
	if s == "" {
		return &LineError{Field: "source.external_id", Err: ErrRequired}
	}
	if len(s) > 40 {
		return fieldErr("source.external_id", "%d characters, at most 40 allowed", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fieldErr("source.external_id", "byte %d is not printable ASCII", i+1)
		}
	}
	return nil
}

// checkUTF8 rejects any string that is not UTF-8. CSV and PostgreSQL (SQL_ASCII
// databases) can carry such bytes; the JSONL reader checks the raw line itself
// because encoding/json would silently replace them. Every string field is
// visited (wire.Walk), so a field added to the payload is checked too.
func checkUTF8(p *wire.Payload) error {
	var bad *LineError
	wire.Walk(p, func(f wire.Field) bool {
		if f.Kind == wire.KindString && !utf8.ValidString(f.Str) {
			bad = &LineError{Field: f.Name(), Err: ErrInvalidUTF8}
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	return nil
}
