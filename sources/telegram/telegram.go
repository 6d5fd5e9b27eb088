package telegram

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// ResultFile is the name of the export's JSON file in its folder.
const ResultFile = "result.json"

// Open opens the export spec.Path names (result.json, or the folder holding
// it) and returns its Reader. It reads nothing but the first bytes, to refuse
// at once a file that is not a Telegram Desktop JSON export.
func Open(ctx context.Context, spec sources.Spec) (*sources.Reader, error) {
	return open(ctx, spec, minBuf)
}

// open is Open with a read buffer of bufSize bytes (tests make it tiny).
func open(ctx context.Context, spec sources.Spec, bufSize int) (*sources.Reader, error) {
	if err := spec.Check(); err != nil {
		return nil, err
	}
	if spec.Path == "-" {
		return nil, errors.New("telegram: the export is read from its file or folder (its media lie beside it), not from stdin")
	}
	if spec.MaxRecordBytes <= 0 {
		spec.MaxRecordBytes = sources.DefaultMaxRecordBytes
	}
	path, err := resultPath(spec.Path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		f.Close()
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open source: %w", err)
	}
	d := newDecoder(ctx, spec, path, f, dir, root, bufSize)
	if err := d.sniff(); err != nil {
		root.Close()
		f.Close()
		return nil, err
	}
	return sources.NewReader(spec, path, d, true, f, root), nil
}

// resultPath is the result.json that path names, itself or in its folder.
func resultPath(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("open source: %w", err)
	}
	if !fi.IsDir() {
		return path, nil
	}
	p := filepath.Join(path, ResultFile)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if _, err := os.Stat(filepath.Join(path, "messages.html")); err == nil {
		return "", fmt.Errorf("%s holds an HTML export (messages.html), which cannot be read: export again choosing \"Machine-readable JSON\" as the format", path)
	}
	return "", fmt.Errorf("%s holds no %s: give the folder Telegram Desktop exported (ChatExport_... or DataExport_...), or the file itself", path, ResultFile)
}

// contact is one entry of contacts.list.
type contact struct {
	name, phone string
}

// chat is the conversation a message belongs to.
type chat struct {
	id     int64
	typ    string
	name   string
	hasID  bool
	hasTyp bool
	peer   string // from_id of the client: "user<id>"
	conv   chatexport.Chat
	skip   string // why the chat is skipped; "" for a personal chat
}

// decoder is the sources.Decoder of one result.json.
type decoder struct {
	spec    sources.Spec
	name    string
	dir     string // the export folder, absolute
	root    *os.Root
	sc      *scanner
	company *chatexport.Company
	selfID  string // "user<id>" of the exporting account, when the export says
	selfNm  string
	people  map[int64]contact
	skipped map[string]int64

	pull     func() (*item, bool)
	stop     func()
	lastLine int64 // the Line of the last item given out
	ended    bool

	free    []*item // items given out and done with, for reuse
	prev    *item   // the item the last Next gave out
	msg     tgMessage
	parser  parser
	scratch []byte
	win     window
}

func newDecoder(ctx context.Context, spec sources.Spec, name string, f io.ReadSeeker, dir string, root *os.Root, bufSize int) *decoder {
	d := &decoder{
		spec: spec, name: name, dir: dir, root: root,
		sc:      newScanner(ctx, f, spec.MaxRecordBytes, bufSize),
		company: chatexport.NewCompany(spec),
		people:  map[int64]contact{},
		skipped: map[string]int64{},
	}
	d.pull, d.stop = iter.Pull(d.walk)
	return d
}

// Skipped counts what the decoder did not turn into records (see
// sources.Stats.Skipped).
func (d *decoder) Skipped() map[string]int64 { return d.skipped }

func (d *decoder) Close() error {
	d.stop()
	return nil
}

// sniff refuses a file that cannot be a Telegram JSON export.
func (d *decoder) sniff() error {
	c, ok := d.sc.peek()
	switch {
	case !ok && d.sc.err != nil:
		return &sources.ReadError{Name: d.name, Err: d.sc.err}
	case !ok:
		return &sources.ReadError{Name: d.name, Err: errors.New("the file is empty: the export did not finish, or this is not its result.json")}
	case c != '{':
		return &sources.ReadError{Name: d.name, Err: fmt.Errorf("not a Telegram Desktop JSON export: it starts with %s, not an object {", quoteByte(c))}
	}
	return nil
}

// Next gives out the next message in the order described in the package
// comment. Lines only grow: an item given out after one from further down
// the file (a message put back in id order) takes the next line.
func (d *decoder) Next(ctx context.Context, p *wire.Payload) (sources.Position, error) {
	d.sc.ctx = ctx
	if d.prev != nil { // its Raw was valid until this call
		d.free = append(d.free, d.prev)
		d.prev = nil
	}
	if d.ended {
		return sources.Position{Line: d.lastLine}, io.EOF
	}
	it, ok := d.pull()
	if !ok {
		d.ended = true
		return sources.Position{Line: d.lastLine}, io.EOF
	}
	it.pos.Line = max(it.pos.Line, d.lastLine+1)
	d.lastLine = it.pos.Line
	d.prev = it
	if it.err != nil {
		var le *sources.LineError
		if !errors.As(it.err, &le) {
			d.ended = true // fatal
		}
		return it.pos, it.err
	}
	it.chat.conv.Payload(&it.msg, p)
	return it.pos, nil
}

// errStop: the consumer stopped pulling (the Reader was closed): yield
// must not be called again.
var errStop = errors.New("stopped")

// errCut: the file ends inside a message, which is given out as a bad
// record; nothing after it can be read.
var errCut = errors.New("cut")

// walk reads the file and yields its items.
func (d *decoder) walk(yield func(*item) bool) {
	err := d.top(yield)
	switch {
	case err == nil, errors.Is(err, errStop), errors.Is(err, errCut):
	default:
		yield(&item{pos: sources.Position{Line: d.sc.line, Offset: d.sc.off}, err: d.fatal(err)})
	}
}

// fatal turns an error that ends the read into what Next returns: a
// structural fault or a cut is a bad record (everything before it was read);
// anything else (a read error, a missing --tz) stops the read.
func (d *decoder) fatal(err error) error {
	var pe *posError
	if errors.As(err, &pe) && d.sc.err == nil {
		return &sources.LineError{Err: fmt.Errorf("%w; nothing after it could be read", err)}
	}
	var re *sources.ReadError
	if errors.As(err, &re) {
		return re
	}
	return &sources.ReadError{Name: d.name, Line: d.sc.line, Err: fmt.Errorf("byte offset %d: %w", d.sc.off, err)}
}

// section is a part of the file set aside to be read later.
type section struct {
	key string
	at  mark
}

// top reads the top-level object: a one-chat export or a whole account's.
func (d *decoder) top(yield func(*item) bool) error {
	var one chat // the one-chat export's header
	var deferred []section
	sawPeople, sawContacts, shape := false, false, ""
	err := d.object(func(key string) error {
		switch key {
		case "personal_information":
			sawPeople = true
			return d.personal()
		case "contacts":
			sawContacts = true
			return d.contacts()
		case "chats", "left_chats":
			shape = "account"
			if !sawPeople || !sawContacts {
				// Read once the sections it needs are known (a file with
				// sorted keys has them after, or an export without them).
				deferred = append(deferred, section{key, d.sc.mark()})
				_, err := d.skip()
				return err
			}
			return d.chatList(yield)
		case "messages":
			shape = "chat"
			if !one.hasID || !one.hasTyp {
				deferred = append(deferred, section{key, d.sc.mark()})
				_, err := d.skip()
				return err
			}
			return d.messages(&one, yield)
		case "name", "type", "id":
			return d.header(&one, key)
		}
		_, err := d.skip()
		return err
	})
	if err != nil {
		return err
	}
	if shape == "" {
		return &sources.ReadError{Name: d.name, Err: errors.New("no chats in this export (neither \"chats\" nor \"messages\"): export again with \"Personal chats\" ticked")}
	}
	for _, s := range deferred {
		if err := d.sc.seek(s.at); err != nil {
			return err
		}
		if s.key == "messages" {
			if !one.hasID {
				return d.sc.syntaxErr("the chat has no \"id\"")
			}
			err = d.messages(&one, yield)
		} else {
			err = d.chatList(yield)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// object reads an object, calling field for each key with the scanner at
// its value, which field must consume.
func (d *decoder) object(field func(key string) error) error {
	if err := d.sc.expect('{', "an object {"); err != nil {
		return err
	}
	for {
		c, ok := d.sc.peek()
		switch {
		case !ok:
			return d.sc.syntaxErr("%w inside an object", errEnd)
		case c == '}':
			d.sc.next()
			return nil
		case c == ',':
			d.sc.next()
			continue
		case c != '"':
			return d.sc.syntaxErr("want a key, found %s", quoteByte(c))
		}
		key, err := d.key()
		if err != nil {
			return err
		}
		if err := d.sc.expect(':', "':' after the key "+strconv.Quote(key)); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
}

// array reads an array, calling elem with the scanner at each element,
// which elem must consume.
func (d *decoder) array(elem func() error) error {
	if err := d.sc.expect('[', "an array ["); err != nil {
		return err
	}
	for {
		c, ok := d.sc.peek()
		switch {
		case !ok:
			return d.sc.syntaxErr("%w inside an array", errEnd)
		case c == ']':
			d.sc.next()
			return nil
		case c == ',':
			d.sc.next()
			continue
		case c == '}' || c == ':':
			return d.sc.syntaxErr("want an array element, found %s", quoteByte(c))
		}
		if err := elem(); err != nil {
			return err
		}
	}
}

// key reads an object key.
func (d *decoder) key() (string, error) {
	v, err := d.value()
	if err != nil {
		return "", err
	}
	var k string
	if err := d.unmarshal(v, &k); err != nil {
		return "", err
	}
	return k, nil
}

// value reads one whole value to keep.
func (d *decoder) value() (value, error) {
	v, err := d.sc.scanValue(true)
	switch {
	case err != nil:
		return v, err
	case v.cut:
		return v, &posError{Offset: v.at.off, Line: v.at.line, Err: fmt.Errorf("%w inside a value", errEnd)}
	case v.tooBig:
		return v, &posError{Offset: v.at.off, Line: v.at.line, Err: fmt.Errorf("%w: a value of %d bytes, the limit is %d", sources.ErrTooLarge, v.size, d.spec.MaxRecordBytes)}
	case v.size == 0:
		c, _ := d.sc.peek()
		return v, d.sc.syntaxErr("want a value, found %s", quoteByte(c))
	}
	return v, nil
}

// skip consumes one value without keeping it.
func (d *decoder) skip() (value, error) {
	v, err := d.sc.scanValue(false)
	switch {
	case err != nil:
		return v, err
	case v.cut:
		return v, &posError{Offset: v.at.off, Line: v.at.line, Err: fmt.Errorf("%w inside a value", errEnd)}
	case v.size == 0:
		c, _ := d.sc.peek()
		return v, d.sc.syntaxErr("want a value, found %s", quoteByte(c))
	}
	return v, nil
}

// unmarshal decodes a structural value (not a message), repairing it if
// needed.
func (d *decoder) unmarshal(v value, dst any) error {
	err := json.Unmarshal(v.raw, dst)
	if err == nil {
		return nil
	}
	fixed, edits, changed := repair(d.scratch[:0], v.raw)
	d.scratch = fixed
	if changed {
		if err = json.Unmarshal(fixed, dst); err == nil {
			return nil
		}
	}
	pe := &posError{Offset: v.at.off, Line: v.at.line, Err: err}
	var lpe *posError
	if errors.As(locate(v.raw, err, edits), &lpe) && lpe.Offset >= 0 {
		pe.Offset += lpe.Offset
		pe.Line += lpe.Line
		pe.Err = lpe.Err
	}
	return pe
}

// personal reads personal_information: the exporting account.
func (d *decoder) personal() error {
	v, err := d.value()
	if err != nil {
		return err
	}
	var p struct {
		UserID    flexInt `json:"user_id"`
		FirstName string  `json:"first_name"`
		LastName  string  `json:"last_name"`
	}
	if err := d.unmarshal(v, &p); err != nil {
		return err
	}
	if p.UserID.set {
		d.selfID = "user" + strconv.FormatInt(p.UserID.v, 10)
		d.company.AddID(d.selfID)
	}
	d.selfNm = fullName(p.FirstName, p.LastName)
	d.company.AddName(d.selfNm)
	return nil
}

// contacts reads contacts.list, one contact at a time.
func (d *decoder) contacts() error {
	return d.object(func(key string) error {
		if key != "list" {
			_, err := d.skip()
			return err
		}
		return d.array(func() error {
			v, err := d.value()
			if err != nil {
				return err
			}
			var c struct {
				UserID    flexInt `json:"user_id"`
				FirstName string  `json:"first_name"`
				LastName  string  `json:"last_name"`
				Phone     string  `json:"phone_number"`
			}
			if err := d.unmarshal(v, &c); err != nil || !c.UserID.set {
				return nil // a contact that does not decode costs its phone only
			}
			d.people[c.UserID.v] = contact{name: fullName(c.FirstName, c.LastName), phone: strings.TrimSpace(c.Phone)}
			return nil
		})
	})
}

func fullName(first, last string) string {
	return strings.TrimSpace(strings.TrimSpace(first) + " " + strings.TrimSpace(last))
}

// header reads one of a chat's name, type and id.
func (d *decoder) header(ch *chat, key string) error {
	v, err := d.value()
	if err != nil {
		return err
	}
	switch key {
	case "name":
		var s *string
		if err := d.unmarshal(v, &s); err != nil {
			return err
		}
		if s != nil {
			ch.name = strings.TrimSpace(*s)
		}
	case "type":
		if err := d.unmarshal(v, &ch.typ); err != nil {
			return err
		}
		ch.hasTyp = true
	case "id":
		var id flexInt
		if err := d.unmarshal(v, &id); err != nil {
			return err
		}
		ch.id, ch.hasID = id.v, id.set
	}
	return nil
}

// chatList reads {"about": ..., "list": [chat, ...]}.
func (d *decoder) chatList(yield func(*item) bool) error {
	return d.object(func(key string) error {
		if key != "list" {
			_, err := d.skip()
			return err
		}
		return d.array(func() error { return d.chatObject(yield) })
	})
}

// chatObject reads one chat of chats.list.
func (d *decoder) chatObject(yield func(*item) bool) error {
	var ch chat
	var msgs *mark
	err := d.object(func(key string) error {
		switch key {
		case "name", "type", "id":
			return d.header(&ch, key)
		case "messages":
			if ch.hasID && ch.hasTyp {
				return d.messages(&ch, yield)
			}
			m := d.sc.mark()
			msgs = &m
		}
		_, err := d.skip()
		return err
	})
	if err != nil || msgs == nil {
		return err
	}
	// The messages came before the chat's type and id: read them now.
	end := d.sc.mark()
	if err := d.sc.seek(*msgs); err != nil {
		return err
	}
	if !ch.hasID {
		return d.sc.syntaxErr("a chat without an \"id\"")
	}
	if err := d.messages(&ch, yield); err != nil {
		return err
	}
	return d.sc.seek(end)
}

// skipReasons maps chat types to why a chat of that type is skipped.
var skipReasons = map[string]string{
	"personal_chat":      "",
	"bot_chat":           sources.SkipBotChat,
	"saved_messages":     sources.SkipSavedMessages,
	"private_group":      sources.SkipGroupChat,
	"private_supergroup": sources.SkipGroupChat,
	"public_supergroup":  sources.SkipGroupChat,
	"private_channel":    sources.SkipChannel,
	"public_channel":     sources.SkipChannel,
}

// prepare sets up a chat whose header is read.
func (d *decoder) prepare(ch *chat) {
	reason, ok := skipReasons[ch.typ]
	if !ok {
		reason = sources.SkipOtherChat // "replies", or a type of a newer version
	}
	ch.skip = reason
	if !ch.hasTyp && ch.hasID {
		ch.skip = "" // an old one-chat export without a type: a personal chat
	}
	id := strconv.FormatInt(ch.id, 10)
	ch.peer = "user" + id
	name := ch.name
	c := d.people[ch.id]
	if name == "" {
		name = c.name
	}
	if name == "" {
		name = "Telegram user " + id
	}
	ch.conv = chatexport.Chat{ID: "tg-" + id, Client: wire.Participant{ID: "tg-user" + id, Name: name}}
	if c.phone != "" {
		ch.conv.Client.Profile = &wire.Profile{Phone: c.phone}
	}
}

// messages reads a chat's messages array: skipped whole and counted for a
// chat that is not a personal chat, else message by message through the
// reorder window.
func (d *decoder) messages(ch *chat, yield func(*item) bool) error {
	d.prepare(ch)
	if ch.skip != "" {
		d.skipped[ch.skip]++
		return d.array(func() error {
			if _, err := d.skip(); err != nil {
				return err
			}
			d.skipped[sources.SkipChatMessage]++
			return nil
		})
	}
	d.win.reset()
	flush := func(all bool) bool {
		for d.win.len() > 0 && (all || d.win.full()) {
			if !yield(d.win.pop()) {
				return false
			}
		}
		return true
	}
	err := d.array(func() error {
		it, err := d.message(ch)
		if it != nil {
			d.win.push(it)
			if !flush(false) {
				return errStop
			}
		}
		return err
	})
	if errors.Is(err, errStop) {
		return err
	}
	if !flush(true) {
		return errStop
	}
	return err
}

// message reads one message of a personal chat. It returns nil for a
// message that is skipped (and counted), an item with err for a bad one,
// and an error that ends the read.
func (d *decoder) message(ch *chat) (*item, error) {
	v, err := d.sc.scanValue(true)
	if err != nil {
		return nil, err
	}
	// The window holds messages while the scanner reads on: keep a copy.
	it := d.newItem()
	it.pos = sources.Position{Line: v.at.line, Offset: v.at.off, Raw: append(it.pos.Raw, v.raw[:min(len(v.raw), sources.MaxRawBytes)]...)}
	bad := func(field string, err error) *item {
		it.err = &sources.LineError{Field: field, Err: err}
		return it
	}
	switch {
	case v.cut:
		return bad("", fmt.Errorf("byte offset %d: the file ends inside this message: the export was cut short (copied before it finished?); the messages before it are read", v.at.off)), errCut
	case v.tooBig:
		return bad("", fmt.Errorf("%w: a message of %d bytes at byte offset %d, the limit is %d", sources.ErrTooLarge, v.size, v.at.off, d.spec.MaxRecordBytes)), nil
	case v.size == 0:
		c, _ := d.sc.peek()
		return nil, d.sc.syntaxErr("want a message, found %s", quoteByte(c))
	}
	m := &d.msg
	if err := parseMessage(v.raw, m, &d.parser); err != nil {
		return bad(decodeField(err), d.where(v, err)), nil
	}
	it.id, it.chat = m.ID.v, ch
	switch m.Type {
	case "service":
		d.skipped[sources.SkipServiceMessage]++
		d.free = append(d.free, it)
		return nil, nil
	case "unsupported":
		d.skipped[sources.SkipUnsupported]++
		d.free = append(d.free, it)
		return nil, nil
	}
	if !m.ID.set {
		return bad("id", fmt.Errorf("%w: the message's id", sources.ErrRequired)), nil
	}
	if err := d.build(ch, m, v.raw, &it.msg); err != nil {
		var fe *fieldErr
		if errors.As(err, &fe) {
			return bad(fe.Field, fmt.Errorf("message %d: %w", m.ID.v, d.place(v, fe.Err))), nil
		}
		if errors.Is(err, errSkip) {
			d.free = append(d.free, it)
			return nil, nil
		}
		return nil, err // fatal
	}
	return it, nil
}

// newItem is an item to fill, reusing one given out before (and its Raw's
// memory).
func (d *decoder) newItem() *item {
	n := len(d.free)
	if n == 0 {
		return &item{}
	}
	it := d.free[n-1]
	d.free = d.free[:n-1]
	raw := it.pos.Raw[:0]
	if cap(raw) > 64<<10 {
		raw = nil // not a huge message's buffer for every later one
	}
	*it = item{}
	it.pos.Raw = raw
	return it
}

// decodeField is the message field a decoding error names, if any.
func decodeField(err error) string {
	var fe *fieldErr
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// where says where in the file a message's decoding error is: the place
// the decoder stopped when it says, else the message's start.
func (d *decoder) where(v value, err error) error {
	var pe *posError
	if !errors.As(err, &pe) || pe.Offset < 0 {
		return fmt.Errorf("the message at byte offset %d does not decode: %w", v.at.off, err)
	}
	return d.place(v, err)
}

// place turns an error at a place in a message's bytes into one at its
// place in the file; other errors stay as they are (the record's line
// names the message).
func (d *decoder) place(v value, err error) error {
	var pe *posError
	if !errors.As(err, &pe) || pe.Offset < 0 {
		return err
	}
	return fmt.Errorf("line %d, byte offset %d: %w", v.at.line+pe.Line, v.at.off+pe.Offset, pe.Err)
}

// errSkip: the message is skipped (and counted).
var errSkip = errors.New("skipped")

// errNeedTZ: an old export without date_unixtime and no --tz.
var errNeedTZ = errors.New("has no date_unixtime: Telegram Desktop before 3.7.6 wrote only the local time of the computer that made the export; " +
	"give --tz ZONE, that computer's time zone (an IANA name such as Europe/Berlin)")

// build turns a decoded message of a personal chat into out.
func (d *decoder) build(ch *chat, m *tgMessage, raw []byte, out *chatexport.Message) error {
	*out = chatexport.Message{MsgID: "tg-" + strconv.FormatInt(ch.id, 10) + "-" + strconv.FormatInt(m.ID.v, 10)}
	date := ""
	if !m.DateUnixtime.set {
		date = m.Date(&d.parser)
	}
	switch {
	case m.DateUnixtime.set:
		out.Time = time.Unix(m.DateUnixtime.v, 0)
	case date != "" && d.spec.Location == nil:
		return fmt.Errorf("message %d of chat %q %w", m.ID.v, ch.conv.Client.Name, errNeedTZ)
	case date != "":
		t, err := time.ParseInLocation("2006-01-02T15:04:05", date, d.spec.Location)
		if err != nil {
			return fieldError("date", fmt.Errorf("%q is not a time like 2024-03-14T18:02:11", date))
		}
		out.Time = t
	default:
		return fieldError("date_unixtime", sources.ErrRequired)
	}

	author := ""
	if m.From != nil {
		author = strings.TrimSpace(*m.From)
	}
	from := string(m.FromID)
	switch {
	case from == ch.peer:
	case from != "":
		out.FromCompany = true
	case author != "" && chatexport.Fold(author) == chatexport.Fold(ch.name):
	case d.company.Is("", author):
		out.FromCompany = true
	default:
		return fieldError("from_id", fmt.Errorf("%w, and the author %q is neither the chat's peer %q nor a --self name: give --self with the exporting account's name",
			sources.ErrRequired, author, ch.name))
	}
	if out.FromCompany {
		if author == "" {
			author = d.selfNm
		}
		if author == "" {
			author = "Telegram user " + strings.TrimPrefix(from, "user")
		}
		out.AuthorID, out.Author = d.company.AgentID(from, author), author
	} else {
		out.AuthorID, out.Author = from, author
	}

	text, err := m.Text(&d.parser, raw)
	if err != nil {
		return err
	}
	if name, ok := m.forwardedFrom(); ok {
		if name == "" {
			name = "a hidden account"
		}
		text = strings.TrimRight("[forwarded from "+name+"] "+text, " ")
	}
	out.Text = text
	if m.ReplyTo.set && (m.ReplyToPeer == "" || string(m.ReplyToPeer) == ch.peer) && m.ReplyTo.v != m.ID.v {
		out.ReplyTo = "tg-" + strconv.FormatInt(ch.id, 10) + "-" + strconv.FormatInt(m.ReplyTo.v, 10)
	}

	switch {
	case m.Poll || m.GameTitle != "" || m.Invoice:
		d.skipped[sources.SkipUnsupported]++
		return errSkip
	case m.Photo != nil:
		out.Media = d.media(*m.Photo, wire.TypePicture, "", m.PhotoFileSize.v)
	case m.File != nil:
		out.Media = d.media(*m.File, fileType(m.MediaType), m.FileName, m.FileSize.v)
		out.Media.Duration = m.Duration.v
		if m.MediaType == "sticker" && out.Text == "" {
			out.Text = m.StickerEmoji
		}
	case m.Contact != nil:
		c := m.Contact
		name := fullName(c.FirstName, c.LastName)
		phone := strings.TrimSpace(c.PhoneNumber)
		if name == "" {
			name = phone
		}
		if phone != "" {
			out.Contact = &wire.Contact{Name: name, Phone: phone}
		} else if out.Text == "" {
			out.Text = "[contact: " + name + "]"
		}
	case m.HasLocation:
		if l := m.location(); l != nil {
			out.Location = &wire.Location{Lat: *l.Latitude, Lon: *l.Longitude}
		} else if out.Text == "" && m.PlaceName != "" {
			out.Text = "[place: " + m.PlaceName + "]"
		}
	}
	if out.Media == nil && out.Location == nil && out.Contact == nil && strings.TrimSpace(out.Text) == "" {
		d.skipped[sources.SkipUnsupported]++
		return errSkip
	}
	return nil
}

// fileType is the Kommo message type of a Telegram file's media_type.
func fileType(mediaType string) string {
	switch mediaType {
	case "sticker":
		return wire.TypeSticker
	case "video_file", "animation", "video_message":
		return wire.TypeVideo
	case "voice_message":
		return wire.TypeVoice
	case "audio_file":
		return wire.TypeAudio
	}
	return wire.TypeFile
}

// media is a photo or file as the export holds it: the file beside
// result.json, or no file (a placeholder, a path out of the export folder,
// a file not there).
func (d *decoder) media(path, typ, fileName string, size int64) *chatexport.Media {
	md := &chatexport.Media{Type: typ, FileName: fileName, Size: size}
	path = strings.TrimSpace(path)
	if placeholder(path) {
		md.Missing = path
		return md
	}
	rel := filepath.FromSlash(path)
	if md.FileName == "" {
		md.FileName = filepath.Base(rel)
	}
	if !filepath.IsLocal(rel) {
		md.Missing = "outside the export folder"
		return md
	}
	fi, err := d.root.Stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		md.Missing = "not in the export folder"
		return md
	case err != nil:
		md.Missing = err.Error() // a path through a link out of the folder, ...
		return md
	case !fi.Mode().IsRegular():
		md.Missing = "not a file"
		return md
	}
	md.Path, md.Size = filepath.Join(d.dir, rel), fi.Size()
	return md
}

// placeholder reports a photo or file value that says why there is no
// file: "(File not included. Change data exporting settings to download.)",
// "(File exceeds maximum size. ...)", "(File unavailable, please try again
// later)" (TD-JSON pushPath), possibly after a name.
func placeholder(v string) bool {
	return v == "" || strings.HasPrefix(v, "(") || strings.HasSuffix(v, ")") && strings.Contains(v, " (File ")
}
