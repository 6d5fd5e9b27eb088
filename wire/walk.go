package wire

import (
	"strconv"
	"strings"
)

// Kind is the kind of a Field.
type Kind uint8

// The kinds of Field.
const (
	KindString Kind = iota + 1
	KindInt
	KindFloat
	KindBool
	// KindPresence: an optional object (a pointer) or a list's length; Int
	// is 1 or 0 for an object, the length for a list.
	KindPresence
)

// Field is one scalar field of a payload, as Walk meets it.
type Field struct {
	// Path is the field's JSON path, "message.file_name". An element of
	// forwards.messages is written "forwards.messages[].text", with its
	// position in Index.
	Path  string
	Index int // the element's position for a path with "[]"; -1 otherwise
	Kind  Kind
	Str   string  // KindString
	Int   int64   // KindInt, KindPresence (1 or 0, or a list's length)
	Float float64 // KindFloat
	Bool  bool    // KindBool
}

// Name is the path with the element's position filled in:
// "forwards.messages[2].text".
func (f Field) Name() string {
	if f.Index < 0 {
		return f.Path
	}
	return strings.Replace(f.Path, "[]", "["+strconv.Itoa(f.Index)+"]", 1)
}

// Walk calls fn for every scalar field of p, in a fixed order, and for the
// presence of every optional object (so that a nil object and one with only
// empty fields differ). It stops when fn returns false. Nothing is
// allocated per field: paths are constants.
func Walk(p *Payload, fn func(Field) bool) {
	w := walker{fn: fn}
	w.payload(p)
}

type walker struct {
	fn      func(Field) bool
	stopped bool
	inList  bool // inside forwards.messages: Index is index
	index   int
}

func (w *walker) emit(f Field) {
	if w.stopped {
		return
	}
	f.Index = -1
	if w.inList {
		f.Index = w.index
	}
	if !w.fn(f) {
		w.stopped = true
	}
}

func (w *walker) str(path, s string)       { w.emit(Field{Path: path, Kind: KindString, Str: s}) }
func (w *walker) num(path string, n int64) { w.emit(Field{Path: path, Kind: KindInt, Int: n}) }
func (w *walker) flt(path string, x float64) {
	w.emit(Field{Path: path, Kind: KindFloat, Float: x})
}
func (w *walker) boolean(path string, b bool) { w.emit(Field{Path: path, Kind: KindBool, Bool: b}) }

// has reports an optional object's presence and returns it.
func (w *walker) has(path string, present bool) bool {
	var n int64
	if present {
		n = 1
	}
	w.emit(Field{Path: path, Kind: KindPresence, Int: n})
	return present && !w.stopped
}

func (w *walker) payload(p *Payload) {
	w.num("timestamp", p.Timestamp)
	w.num("msec_timestamp", p.MsecTimestamp)
	w.str("msgid", p.MsgID)
	w.str("conversation_id", p.ConversationID)
	w.str("conversation_ref_id", p.ConversationRefID)
	if w.has("sender", p.Sender != nil) {
		w.participant(p.Sender, "sender.id", "sender.ref_id", "sender.name", "sender.avatar", "sender.profile",
			"sender.profile.phone", "sender.profile.email", "sender.profile_link")
	}
	if w.has("receiver", p.Receiver != nil) {
		w.participant(p.Receiver, "receiver.id", "receiver.ref_id", "receiver.name", "receiver.avatar", "receiver.profile",
			"receiver.profile.phone", "receiver.profile.email", "receiver.profile_link")
	}
	if w.has("message", p.Message != nil) {
		w.message(p.Message)
	}
	w.boolean("silent", p.Silent)
	if w.has("source", p.Source != nil) {
		w.str("source.external_id", p.Source.ExternalID)
	}
	if w.has("reply_to", p.ReplyTo != nil) {
		w.embedded(&p.ReplyTo.Message, &replyPaths)
	}
	if w.has("forwards", p.Forwards != nil) {
		fw := p.Forwards
		w.emit(Field{Path: "forwards.messages", Kind: KindPresence, Int: int64(len(fw.Messages))})
		w.inList = true
		for i := range fw.Messages {
			w.index = i
			w.embedded(&fw.Messages[i], &forwardPaths)
		}
		w.inList = false
		w.str("forwards.conversation_id", fw.ConversationID)
		w.str("forwards.conversation_ref_id", fw.ConversationRefID)
	}
}

func (w *walker) participant(u *Participant, id, refID, name, avatar, profile, phone, email, link string) {
	w.str(id, u.ID)
	w.str(refID, u.RefID)
	w.str(name, u.Name)
	w.str(avatar, u.Avatar)
	if w.has(profile, u.Profile != nil) {
		w.str(phone, u.Profile.Phone)
		w.str(email, u.Profile.Email)
	}
	w.str(link, u.ProfileLink)
}

func (w *walker) message(m *Message) {
	w.str("message.type", m.Type)
	w.str("message.text", m.Text)
	w.str("message.media", m.Media)
	w.str("message.file_name", m.FileName)
	w.num("message.file_size", m.FileSize)
	w.num("message.media_duration", m.MediaDuration)
	w.str("message.sticker_id", m.StickerID)
	if w.has("message.location", m.Location != nil) {
		w.flt("message.location.lon", m.Location.Lon)
		w.flt("message.location.lat", m.Location.Lat)
	}
	if w.has("message.contact", m.Contact != nil) {
		w.str("message.contact.name", m.Contact.Name)
		w.str("message.contact.phone", m.Contact.Phone)
	}
	if po := m.Post; w.has("message.post", po != nil) {
		w.str("message.post.id", po.ID)
		w.str("message.post.url", po.URL)
		w.str("message.post.preview_url", po.PreviewURL)
		w.str("message.post.preview_permalink", po.PreviewPermalink)
		w.str("message.post.username", po.Username)
		w.str("message.post.caption", po.Caption)
	}
	if sp := m.SharedPost; w.has("message.shared_post", sp != nil) {
		w.str("message.shared_post.url", sp.URL)
		w.str("message.shared_post.preview_link", sp.PreviewLink)
		w.str("message.shared_post.preview_permalink", sp.PreviewPermalink)
		w.str("message.shared_post.type", sp.Type)
		w.str("message.shared_post.site_name", sp.SiteName)
	}
	if ds := m.DeliveryStatus; w.has("message.delivery_status", ds != nil) {
		w.num("message.delivery_status.status_code", int64(ds.StatusCode))
		w.num("message.delivery_status.error_code", int64(ds.ErrorCode))
		w.str("message.delivery_status.error", ds.Error)
	}
}

// embeddedPaths are the paths of an embedded message's fields under one
// parent, spelled out so that Walk allocates nothing.
type embeddedPaths struct {
	id, msgid, typ, text, timestamp, msec, sender, senderID, senderRefID, senderName,
	fileName, fileSize, duration, location, lon, lat, contact, contactName, contactPhone string
}

func pathsUnder(prefix string) embeddedPaths {
	return embeddedPaths{
		id: prefix + ".id", msgid: prefix + ".msgid", typ: prefix + ".type", text: prefix + ".text",
		timestamp: prefix + ".timestamp", msec: prefix + ".msec_timestamp",
		sender: prefix + ".sender", senderID: prefix + ".sender.id", senderRefID: prefix + ".sender.ref_id", senderName: prefix + ".sender.name",
		fileName: prefix + ".file_name", fileSize: prefix + ".file_size", duration: prefix + ".media_duration",
		location: prefix + ".location", lon: prefix + ".location.lon", lat: prefix + ".location.lat",
		contact: prefix + ".contact", contactName: prefix + ".contact.name", contactPhone: prefix + ".contact.phone",
	}
}

var (
	replyPaths   = pathsUnder("reply_to.message")
	forwardPaths = pathsUnder("forwards.messages[]")
)

func (w *walker) embedded(e *EmbeddedMessage, p *embeddedPaths) {
	w.str(p.id, e.ID)
	w.str(p.msgid, e.MsgID)
	w.str(p.typ, e.Type)
	w.str(p.text, e.Text)
	w.num(p.timestamp, e.Timestamp)
	w.num(p.msec, e.MsecTimestamp)
	if s := e.Sender; w.has(p.sender, s != nil) {
		w.str(p.senderID, s.ID)
		w.str(p.senderRefID, s.RefID)
		w.str(p.senderName, s.Name)
	}
	w.str(p.fileName, e.FileName)
	w.num(p.fileSize, e.FileSize)
	w.num(p.duration, e.MediaDuration)
	if w.has(p.location, e.Location != nil) {
		w.flt(p.lon, e.Location.Lon)
		w.flt(p.lat, e.Location.Lat)
	}
	if w.has(p.contact, e.Contact != nil) {
		w.str(p.contactName, e.Contact.Name)
		w.str(p.contactPhone, e.Contact.Phone)
	}
}
