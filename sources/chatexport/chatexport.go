// Package chatexport holds what the messenger export formats (Telegram,
// WhatsApp, Messenger and Instagram) share: who in a chat is the client and
// who speaks for the company, the payload a message of either side becomes,
// deterministic message ids for formats that have none, and media files found
// beside the export. Each format's package turns its file into Chats and
// Messages; this package turns those into the payloads every source yields.
package chatexport

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// Company tells the company's side of a chat from the client's: the
// exporting account (its names and ids as the export gives them), every
// --self name and every agent of the --users file. Names compare folded
// (case and runs of white space do not matter).
type Company struct {
	names map[string]bool
	ids   map[string]bool
	users *sources.UserMap
}

// NewCompany starts from spec's --self names and --users agents.
func NewCompany(spec sources.Spec) *Company {
	c := &Company{names: map[string]bool{}, ids: map[string]bool{}, users: spec.Users}
	for _, n := range spec.Self {
		c.AddName(n)
	}
	return c
}

// AddName adds a name the company writes under.
func (c *Company) AddName(name string) {
	if k := Fold(name); k != "" {
		c.names[k] = true
	}
}

// AddID adds an export's id of the exporting account (Telegram "user123").
func (c *Company) AddID(id string) {
	if id != "" {
		c.ids[id] = true
	}
}

// Known reports whether any name or id of the company is known: without
// one, a format that cannot tell the sides apart must ask for --self.
func (c *Company) Known() bool {
	return len(c.names) > 0 || len(c.ids) > 0 || (c.users != nil && c.users.Len() > 0)
}

// Is reports whether an author (by export id, by display name) is the
// company.
func (c *Company) Is(id, name string) bool {
	if id != "" && c.ids[id] {
		return true
	}
	if k := Fold(name); k != "" && c.names[k] {
		return true
	}
	return c.users != nil && (c.users.HasAgent(id) || c.users.HasAgent(name))
}

// AgentID is the sender.id a company message goes out under: the one of
// the author's export id and display name that the --users file maps to a
// Kommo user (so agents may be listed by either), else the id, else the
// name.
func (c *Company) AgentID(id, name string) string {
	if c.users != nil && id != "" && !c.users.HasAgent(id) && c.users.HasAgent(name) {
		return name
	}
	if id == "" {
		return name
	}
	return id
}

// Fold is a name as Company compares it: case-folded, white space (NBSP and
// the narrow no-break space of exports included) collapsed to one space,
// trimmed, invisible marks (U+200E, U+200F, U+202A-U+202E) dropped.
func Fold(name string) string {
	var b strings.Builder
	space := false
	for _, r := range name {
		switch {
		case r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || r == '\ufeff':
			continue
		case unicode.IsSpace(r) || r == '\u00a0' || r == '\u202f':
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Chat is one conversation of an export: one client talking to the company.
type Chat struct {
	ID     string           // the conversation_id: "tg-<chat id>", ...
	Client wire.Participant // the client: id, name, profile (phone) where the export has them
}

// Message is one message as the export holds it, before it is a payload.
type Message struct {
	MsgID string    // the message's id; "" for formats without ids (IDs makes one)
	Time  time.Time // to the millisecond where the export has it
	// AuthorID and Author name who wrote it, as the export does.
	AuthorID, Author string
	// FromCompany: written by the company's side (outgoing).
	FromCompany bool
	Text        string
	Media       *Media
	Location    *wire.Location
	Contact     *wire.Contact
	ReplyTo     string // the msgid of the quoted message of the same chat, if any
}

// Media is a message's file as the export holds it.
type Media struct {
	Type     string // wire.TypePicture, TypeVideo, TypeVoice, TypeAudio, TypeSticker or TypeFile
	Path     string // the file's absolute local path; "" when the export holds no file
	FileName string
	Size     int64 // bytes; from the file where it is there
	Duration int64 // seconds, for voice, audio and video
	// Missing says why there is no file, in the export's words or ours
	// ("not included in the export"), when Path is "".
	Missing string
}

// Payload fills p with m as a message of the chat: incoming (the client
// sends, no receiver) or outgoing (the author sends under an agent id
// --users maps to a Kommo user, and the client receives).
func (c *Chat) Payload(m *Message, p *wire.Payload) {
	*p = wire.Payload{
		Timestamp:      m.Time.Unix(),
		MsecTimestamp:  m.Time.UnixMilli(),
		MsgID:          m.MsgID,
		ConversationID: c.ID,
	}
	client := c.Client
	if m.FromCompany {
		id := m.AuthorID
		if id == "" {
			id = m.Author
		}
		p.Sender = &wire.Participant{ID: id, Name: m.Author}
		p.Receiver = &client
	} else {
		p.Sender = &client
	}
	msg := &wire.Message{Type: wire.TypeText, Text: m.Text}
	switch {
	case m.Location != nil:
		msg = &wire.Message{Type: wire.TypeLocation, Location: m.Location}
	case m.Contact != nil:
		msg = &wire.Message{Type: wire.TypeContact, Contact: m.Contact}
	case m.Media != nil:
		msg = &wire.Message{Type: m.Media.Type, Text: m.Text, FileName: m.Media.FileName, FileSize: m.Media.Size, MediaDuration: m.Media.Duration}
		if m.Media.Path != "" {
			msg.Media = FileURL(m.Media.Path)
		}
	}
	p.Message = msg
	if m.ReplyTo != "" {
		p.ReplyTo = &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: m.ReplyTo}}
	}
}

// FileURL is the file: URL of an absolute local path, as a payload's
// message.media holds a local file until it is hosted.
func FileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// IDs makes message ids for formats that have none (WhatsApp, Meta): a
// hash of the chat, the time as the export writes it, the author and the
// text, and the ordinal among identical ones, so that a later export of the
// same chat (more messages after, or fewer before, cut by the app's export
// cap) gives the same messages the same ids.
type IDs struct {
	prefix string
	seen   map[[sha256.Size]byte]int
}

// NewIDs returns ids starting with prefix ("wa-", "fb-").
func NewIDs(prefix string) *IDs {
	return &IDs{prefix: prefix, seen: map[[sha256.Size]byte]int{}}
}

// Next is the id of the next message with these parts.
func (ids *IDs) Next(chat, rawTime, author, text string) string {
	h := sha256.New()
	for _, s := range []string{chat, rawTime, author, text} {
		h.Write([]byte(s))
		h.Write([]byte{0xff})
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	n := ids.seen[key]
	ids.seen[key] = n + 1
	return ids.prefix + hex.EncodeToString(key[:12]) + "-" + strconv.Itoa(n)
}
