package whatsapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// Kind is the --source kind this package reads: whatsapp:PATH.
const Kind = sources.KindWhatsApp

// Keys of Skipped: what was read and not imported, by reason. The values
// are those of the shared reasons (sources.Skip* where the messenger
// exports' shared rules define them), so every export reports alike.
const (
	// SkippedService: notices WhatsApp writes into a chat (end-to-end
	// encryption, security codes, calls, blocking, disappearing messages).
	SkippedService = "service message"
	// SkippedGroupChat: chats with more than two people (a Kommo chat has
	// one client), once a chat; SkippedGroupMessage counts their messages.
	SkippedGroupChat    = "group chat"
	SkippedGroupMessage = "message in a skipped chat"
	// SkippedEmpty: messages with no text at all.
	SkippedEmpty = "unsupported content"
	// SkippedNotChat: .txt files in a folder that hold no WhatsApp message.
	SkippedNotChat = "not a chat file"
)

// Media without a file ("<Media omitted>", a file not beside the chat) is
// not counted here: it is sent by the --media-missing rule, and the Reader
// counts it for every format.

// Open reads spec.Path, a chat's .txt, the .zip WhatsApp shares or a
// folder of several of either, as a source of payloads. It reads every
// chat once before returning, to learn its header shape, the order of its
// dates and who its client is; so an export that needs --tz, --date-order or
// --self fails here, naming the file, before anything is staged. A file
// that cannot be read as a chat is one bad record; the others go on.
func Open(ctx context.Context, spec sources.Spec) (*sources.Reader, error) {
	d, err := openDecoder(ctx, spec)
	if err != nil {
		return nil, err
	}
	return sources.NewReader(spec, spec.Path, d, true), nil
}

// decoder is the second reading: every chat's messages as payloads, in
// file order.
type decoder struct {
	plans   []*plan
	next    int
	cur     *reading
	folder  bool
	loc     *time.Location
	skipped map[string]int64
	max     int

	failed   *sources.LineError // a read error to report next
	failedAt sources.Position
}

func openDecoder(ctx context.Context, spec sources.Spec) (*decoder, error) {
	if spec.Location == nil {
		return nil, errors.New("whatsapp: --tz is required: WhatsApp writes times in the phone's local time without a zone; " +
			"give the zone the exporting phone was set to, e.g. --tz Europe/Berlin")
	}
	if spec.Path == "" || spec.Path == "-" {
		return nil, errors.New("whatsapp: give the export's .txt, .zip or folder (stdin cannot be read: the file name names the chat and the file is read twice)")
	}
	if spec.DateOrder != "" {
		if _, ok := orderOf(spec.DateOrder); !ok {
			return nil, fmt.Errorf("whatsapp: --date-order %q: want dmy, mdy or ymd", spec.DateOrder)
		}
	}
	inputs, folder, err := findInputs(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("whatsapp: %w", err)
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("whatsapp: %s holds no .txt or .zip chat export", spec.Path)
	}
	maxLine := spec.MaxRecordBytes
	if maxLine <= 0 {
		maxLine = sources.DefaultMaxRecordBytes
	}
	company := chatexport.NewCompany(spec)
	d := &decoder{folder: folder, loc: spec.Location, skipped: map[string]int64{}, max: maxLine}
	var base int64
	for _, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pl, err := scan(ctx, in, spec, company, folder, maxLine)
		if err != nil {
			return nil, fmt.Errorf("whatsapp: %w", err)
		}
		pl.base = base
		base += pl.lines
		d.plans = append(d.plans, pl)
	}
	return d, nil
}

// Skipped counts what was read and not imported, by the Skipped* keys;
// final after io.EOF. The Reader reports it in Stats.Skipped.
func (d *decoder) Skipped() map[string]int64 { return maps.Clone(d.skipped) }

// ctxEvery is how many lines are read between looks at the context.
const ctxEvery = 1 << 14

// reading is the chat being read.
type reading struct {
	pl   *plan
	cf   *chatFile
	lr   *lineReader
	ids  *chatexport.IDs
	chat chatexport.Chat
	prev time.Time // the last message's time, for an hour the clock went through twice
	keys map[string]string

	// The message being gathered: its header line and the lines after it.
	msg, spare []byte
	h          header
	have       bool  // msg holds a message (or text before the first header)
	junk       bool  // msg holds text before the first header
	tooLarge   bool  // msg was cut at the size cap
	line, off  int64 // where msg starts
}

// nameKey is nameKey(author), remembered: a chat has two authors.
func (r *reading) nameKey(author string) string {
	if k, ok := r.keys[author]; ok {
		return k
	}
	k := nameKey(author)
	if len(r.keys) < maxAuthors {
		if r.keys == nil {
			r.keys = map[string]string{}
		}
		r.keys[author] = k
	}
	return k
}

// gathered is a finished message.
type gathered struct {
	buf       []byte
	h         header
	junk      bool
	tooLarge  bool
	line, off int64
}

func (d *decoder) Next(ctx context.Context, p *wire.Payload) (sources.Position, error) {
	for {
		if d.failed != nil { // a read error, after the message before it
			err := d.failed
			d.failed = nil
			return d.failedAt, err
		}
		if d.cur == nil {
			if d.next >= len(d.plans) {
				return sources.Position{}, io.EOF
			}
			pl := d.plans[d.next]
			d.next++
			switch {
			case pl.bad != nil:
				return sources.Position{Line: pl.base + 1}, d.fileError("", pl.bad)
			case pl.notChat:
				d.skipped[SkippedNotChat]++
				continue
			case pl.group:
				d.skipped[SkippedGroupChat]++
				d.skipped[SkippedGroupMessage] += pl.messages
				continue
			}
			cf, err := pl.in.open()
			if err != nil {
				return sources.Position{Line: pl.base + 1}, d.fileError("", err)
			}
			d.cur = &reading{pl: pl, cf: cf, lr: newLineReader(cf.text, d.max), ids: chatexport.NewIDs("wa-"),
				chat: chatexport.Chat{ID: pl.convID, Client: pl.client}}
		}
		r := d.cur
		if r.lr.line%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return sources.Position{}, err // a long run of lines without a message
			}
		}
		var (
			line []byte
			off  int64
			err  error
		)
		if r.lr.line >= r.pl.lines {
			// Lines written since the first reading are not read: the
			// positions of the next chat start after this one's.
			err = cmp.Or(r.pl.readErr, io.EOF)
		} else {
			line, off, err = r.lr.next()
		}
		if err != nil {
			fin, ok := r.take()
			n := r.lr.line
			d.closeCurrent()
			if err != io.EOF {
				d.failedAt = sources.Position{Line: r.pl.base + n + 1}
				d.failed = d.fileError("", fmt.Errorf("read stopped: %v; the rest of this chat is not read", err))
			}
			if ok {
				if pos, err, out := d.emit(r, fin, p); out {
					return pos, err
				}
			}
			continue
		}
		if h, ok := parseHeader(line); ok && h.shape == r.pl.shape {
			fin, ok := r.take()
			r.start(h, line, r.lr.line, off, r.lr.tooLong)
			if ok {
				if pos, err, out := d.emit(r, fin, p); out {
					return pos, err
				}
			}
			continue
		}
		r.add(line, r.lr.line, off, d.max, r.lr.tooLong)
	}
}

// start begins gathering a message at its header line.
func (r *reading) start(h header, line []byte, n, off int64, tooLong bool) {
	r.msg = append(r.msg[:0], line...)
	r.h, r.have, r.junk, r.tooLarge, r.line, r.off = h, true, false, tooLong, n, off
}

// add appends a line without a header: the message above it goes on. Text
// before the first header is gathered as junk, reported unless blank.
func (r *reading) add(line []byte, n, off int64, max int, tooLong bool) {
	if !r.have {
		if len(strings.TrimSpace(string(line))) == 0 && !r.junk {
			return
		}
		r.msg, r.have, r.junk, r.tooLarge, r.line, r.off = r.msg[:0], true, true, false, n, off
	} else {
		r.msg = append(r.msg, '\n')
	}
	if tooLong || len(r.msg)+len(line) > max {
		r.tooLarge = true
		return
	}
	r.msg = append(r.msg, line...)
}

// take hands over the gathered message, if any; its bytes stay valid until
// the next take.
func (r *reading) take() (gathered, bool) {
	if !r.have {
		return gathered{}, false
	}
	g := gathered{buf: r.msg, h: r.h, junk: r.junk, tooLarge: r.tooLarge, line: r.line, off: r.off}
	r.msg, r.spare = r.spare[:0], r.msg
	r.have = false
	return g, true
}

func (d *decoder) closeCurrent() {
	if d.cur != nil {
		d.cur.cf.Close()
		d.cur = nil
	}
}

// fileError is a bad record of the chat being read; the Reader adds the
// source's name and the position (and Place, in a folder, the chat's file).
func (d *decoder) fileError(field string, err error) *sources.LineError {
	return &sources.LineError{Field: field, Err: err}
}

// Place names the chat file and line a source line falls in when the
// source is a folder ("" for one file, whose lines are its own).
func (d *decoder) Place(line int64) string {
	if !d.folder {
		return ""
	}
	i := sort.Search(len(d.plans), func(i int) bool { return d.plans[i].base >= line }) - 1
	if i < 0 {
		return ""
	}
	pl := d.plans[i]
	return fmt.Sprintf("%s, line %d", pl.in.rel, line-pl.base)
}

// emit turns a gathered message into p. out is false for what is skipped
// (notices, empty messages), which the caller reads on from.
func (d *decoder) emit(r *reading, g gathered, p *wire.Payload) (pos sources.Position, err error, out bool) {
	pos = sources.Position{Line: r.pl.base + g.line, Offset: g.off, Raw: g.buf}
	switch {
	case g.junk:
		return pos, d.fileError("", errors.New("text before the first message header: not a WhatsApp message")), true
	case g.tooLarge:
		return pos, d.fileError("message.text", fmt.Errorf("%w: the message is longer than %d bytes", sources.ErrTooLarge, d.max)), true
	}
	content := string(g.buf[g.h.content:])
	author, body, ok := splitAuthor(content)
	if !ok {
		d.skipped[SkippedService]++
		return pos, nil, false
	}
	if isSystemBody(body) {
		d.skipped[SkippedService]++
		return pos, nil, false
	}
	body = strings.TrimRight(body, "\n")
	text := strings.TrimPrefix(body, lrm)
	if strings.TrimSpace(cleanName(text)) == "" {
		d.skipped[SkippedEmpty]++
		return pos, nil, false
	}
	t, wall, err := r.timeOf(g.h, d.loc, g.buf)
	if err != nil {
		return pos, d.fileError("timestamp", err), true
	}
	r.prev = t
	key := r.nameKey(author)
	m := chatexport.Message{
		MsgID:  r.ids.Next(r.pl.convID, wall, key, body),
		Time:   t,
		Author: author,
		// In a one-to-one chat everyone but the client is the exporting
		// account; a client who never wrote has no author key.
		FromCompany: r.pl.clientKey == "" || key != r.pl.clientKey,
		Text:        text,
	}
	var zipURL string
	if md, ok := findMedia(body, r.cf.exists); ok {
		cm := &chatexport.Media{Type: md.typ, FileName: md.name}
		m.Text = md.caption
		if lm, found := r.cf.media(md.name); found && !md.omitted {
			cm.Size = lm.size
			if r.cf.zr != nil {
				zipURL = lm.url
			} else {
				cm.Path = lm.path
			}
		} else {
			cm.Missing = "not found beside the chat"
			if md.omitted {
				cm.Missing = md.marker // "<Media omitted>", "image omitted": the export's words
			}
		}
		m.Media = cm
	} else if loc, ok := findLocation(body); ok {
		m.Location = &loc
	}
	r.chat.Payload(&m, p)
	if zipURL != "" {
		p.Message.Media = zipURL
	}
	return pos, nil, true
}

func (d *decoder) Close() error {
	d.closeCurrent()
	return nil
}
