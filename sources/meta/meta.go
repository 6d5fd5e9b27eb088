package meta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// Source kinds.
const (
	KindMessenger = sources.KindMessenger
	KindInstagram = sources.KindInstagram
)

// What is not imported, counted by Decoder.Skipped under these keys. Where
// another export format skips the same thing the key is the same
// (sources.Stats.Skipped's vocabulary): the Reader merges these counts into
// its own, and counts media without a file itself.
const (
	SkipGroupChat      = "group chat"                 // more than two participants: a Kommo chat has one client
	SkipChatMessage    = "message in a skipped chat"  // the messages of the group chats
	SkipServiceMessage = "service message"            // joins and leaves (Subscribe, Unsubscribe)
	SkipCall           = "call"                       // audio and video calls, missed or not
	SkipUnsent         = "unsent message"             // messages their author took back
	SkipReaction       = "reaction"                   // reactions to messages: not messages themselves
	SkipUnsupported    = "unsupported content"        // nothing to show: no text, file or link (a geoblocked message)
	SkipDamagedChat    = "damaged chat"               // JSON that cannot be read; each is also a rejected record naming the file
	SkipUnknownOwner   = "chat without a known owner" // neither --self nor the export tells who the company is; also a rejected record
	SkipOddFile        = "odd file"                   // message_*.json that are not message_N.json (message_final.json)
	SkipHTMLChat       = "chat in HTML format"        // a thread exported as message_N.html only
)

// Open opens a Messenger (spec.Kind KindMessenger) or Instagram
// (KindInstagram) export at spec.Path: the unzipped folder or the .zip. It
// finds the threads but reads none yet; an export with no messages folder,
// one in HTML format, or the other kind's export is an error here.
func Open(ctx context.Context, spec sources.Spec) (*sources.Reader, error) {
	r, _, err := open(ctx, spec)
	return r, err
}

// open is Open that also returns the decoder, for its Skipped counts.
func open(_ context.Context, spec sources.Spec) (*sources.Reader, *Decoder, error) {
	if spec.Kind != KindMessenger && spec.Kind != KindInstagram {
		return nil, nil, fmt.Errorf("source: meta reads messenger and instagram, not %q", spec.Kind)
	}
	if spec.Path == "" || spec.Path == "-" {
		return nil, nil, fmt.Errorf("source %s: give the export's folder or .zip (it cannot be read from stdin)", spec.Kind)
	}
	exp, err := openExport(spec.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: %w", spec.Kind, err)
	}
	return openFS(spec, exp)
}

// openFS reads the export exp (a folder, a zip, or a test's fs.FS) and
// closes it with the Reader, or at once on an error.
func openFS(spec sources.Spec, exp *export) (*sources.Reader, *Decoder, error) {
	found, err := discover(exp.fsys, spec.Kind)
	if err != nil {
		exp.Close()
		return nil, nil, fmt.Errorf("source %s:%s: %w", spec.Kind, spec.Path, err)
	}
	d := &Decoder{
		kind:    spec.Kind,
		exp:     exp,
		company: chatexport.NewCompany(spec),
		owners:  map[string]bool{},
		dirs:    map[string]bool{},
		threads: found.threads,
		counts:  map[string]int64{},
	}
	if d.now = spec.Now; d.now == nil {
		d.now = time.Now
	}
	d.prefix = "fb-"
	if spec.Kind == KindInstagram {
		d.prefix = "ig-"
	}
	if found.html > 0 {
		d.counts[SkipHTMLChat] = int64(found.html)
	}
	if found.legacy != "" {
		if d.legacy, err = openLegacy(exp.fsys, found.legacy, d.company); err != nil {
			exp.Close()
			return nil, nil, fmt.Errorf("source %s:%s: %w", spec.Kind, spec.Path, err)
		}
	}
	// A zip's name and modification time say whether it is the same export;
	// a folder's do not (a newer export unzipped over it leaves the folder's
	// own time alone), so a folder is read again from the start after an
	// interruption, and msgids keep what was staged from being staged twice.
	resumable := exp.dir == ""
	return sources.NewReader(spec, spec.Path, d, resumable, exp), d, nil
}

// Decoder is the sources.Decoder of a Meta export. Use it through the
// Reader Open returns.
type Decoder struct {
	kind, prefix string
	now          func() time.Time
	exp          *export
	company      *chatexport.Company
	owners       map[string]bool // folded names of the folder owner, learned from 1:1 threads

	threads  []threadRef
	next     int
	deferred []threadRef // threads whose sides were unknown on the first pass
	second   bool        // reading the deferred threads
	legacy   *legacyReader

	chat    chatexport.Chat // the current thread's conversation and client
	cur     *current        // the thread being yielded, nil between threads
	pending []item          // records ready to yield: one message's files, or a thread's error
	pos     int             // the next of pending
	line    int64

	counts map[string]int64
	dirs   map[string]bool // dirExists's cache, for one thread
}

// item is one record of the current thread: a message, or an error.
type item struct {
	m      chatexport.Message
	media  chatexport.Media
	shared *wire.SharedPost
	raw    []byte
	err    *sources.LineError
}

// Skipped counts what was not imported so far, by kind (the Skip* keys).
func (d *Decoder) Skipped() map[string]int64 { return maps.Clone(d.counts) }

// Close closes the file the decoder holds open (Instagram's messages.json);
// the Reader closes the export.
func (d *Decoder) Close() error {
	if d.legacy != nil && !d.legacy.done {
		d.legacy.done = true
		return d.legacy.f.Close()
	}
	return nil
}

// Next yields the next record. A damaged thread is one *LineError naming the
// file, line and offset; a bad message one naming its file, line and field.
// A thread is read whole (its messages must be sorted) but turned into
// records one message at a time.
func (d *Decoder) Next(ctx context.Context, p *wire.Payload) (sources.Position, error) {
	for d.pos >= len(d.pending) {
		if err := ctx.Err(); err != nil {
			return sources.Position{}, err
		}
		clear(d.pending)
		d.pending, d.pos = d.pending[:0], 0
		if d.convertNext() {
			continue
		}
		more, err := d.load()
		if err != nil {
			return sources.Position{Line: d.line}, err
		}
		if !more {
			return sources.Position{Line: d.line}, io.EOF
		}
	}
	it := &d.pending[d.pos]
	d.pos++
	d.line++
	pos := sources.Position{Line: d.line, Raw: it.raw}
	if it.err != nil {
		le := *it.err
		return pos, &le
	}
	m := it.m
	if m.Media != nil {
		m.Media = &it.media
	}
	d.chat.Payload(&m, p)
	if it.shared != nil {
		p.Message.SharedPost = it.shared
	}
	return pos, nil
}

// load reads the next thread: it sets d.cur, or puts the thread's error in
// d.pending; false when no thread is left.
func (d *Decoder) load() (bool, error) {
	for {
		if d.legacy != nil {
			ok, err := d.legacy.next(d)
			if err != nil || ok {
				return ok, err
			}
			d.legacy = nil
		}
		var ref *threadRef
		switch {
		case d.next < len(d.threads):
			ref = &d.threads[d.next]
			d.next++
		case !d.second && len(d.deferred) > 0:
			d.second, d.threads, d.next = true, d.deferred, 0
			d.deferred = nil
			continue
		default:
			return false, nil
		}
		if !d.second && len(ref.odd) > 0 {
			d.counts[SkipOddFile] += int64(len(ref.odd))
		}
		d.readRef(ref)
		if len(d.pending) > 0 || d.cur != nil {
			return true, nil
		}
	}
}

// readRef reads one thread and turns it into items (none for a skipped or
// deferred thread).
func (d *Decoder) readRef(ref *threadRef) {
	clear(d.dirs)
	t, err := readThread(d.exp.fsys, ref)
	var dm *damaged
	switch {
	case errors.Is(err, errNotThread):
		return
	case errors.As(err, &dm):
		d.counts[SkipDamagedChat]++
		d.pending = append(d.pending, item{raw: dm.raw, err: &sources.LineError{Err: dm}})
		return
	case err != nil:
		d.counts[SkipDamagedChat]++
		d.pending = append(d.pending, item{err: &sources.LineError{Err: fmt.Errorf("%s: %w: the thread is skipped", ref.name(), err)}})
		return
	}
	if isGroup(t) {
		d.counts[SkipGroupChat]++
		if len(t.msgs) > 0 {
			d.counts[SkipChatMessage] += int64(len(t.msgs))
		}
		return
	}
	sides, ok := d.sides(t)
	if !ok {
		if !d.second {
			d.deferred = append(d.deferred, *ref)
			return
		}
		d.counts[SkipUnknownOwner]++
		err := fmt.Errorf("%s: cannot tell which of %q is the export's owner (the thread's title %q names neither alone): give --self NAME; the thread is skipped",
			ref.name(), t.participants, t.title)
		if len(t.participants) == 0 && t.title == "" {
			err = fmt.Errorf("%s: the thread names neither its participants nor a title: the thread is skipped", ref.name())
		}
		d.pending = append(d.pending, item{err: &sources.LineError{Field: "participants", Err: err}})
		return
	}
	d.emit(t, sides)
}

// isGroup: a group thread by its type or its participants.
func isGroup(t *thread) bool {
	return strings.Contains(t.threadType, "Group") || len(t.participants) > 2
}

// sides is who is who in a one-to-one thread.
type sides struct {
	owner  string // the company's name in the thread; "" when only the client is known
	client string
}

// sides finds the company and the client of a one-to-one thread: a
// participant named by --self or --users is the company; otherwise the
// participant whose name is the thread's title is the client (Meta titles a
// one-to-one thread with the other person's name) and the other one the
// folder owner, whose name is learned for the threads the title cannot
// decide; false when nothing decides.
func (d *Decoder) sides(t *thread) (sides, bool) {
	ps := t.participants
	isCompany := func(name string) bool { return d.company.Is("", name) }
	if len(ps) == 2 {
		a, b := isCompany(ps[0]), isCompany(ps[1])
		if a != b {
			if a {
				return sides{owner: ps[0], client: ps[1]}, true
			}
			return sides{owner: ps[1], client: ps[0]}, true
		}
		title := chatexport.Fold(t.title)
		ta, tb := chatexport.Fold(ps[0]) == title, chatexport.Fold(ps[1]) == title
		if ta != tb && !a {
			owner, client := ps[0], ps[1]
			if ta {
				owner, client = ps[1], ps[0]
			}
			d.owners[chatexport.Fold(owner)] = true
			return sides{owner: owner, client: client}, true
		}
		oa, ob := d.owners[chatexport.Fold(ps[0])], d.owners[chatexport.Fold(ps[1])]
		if oa != ob && !a {
			if oa {
				return sides{owner: ps[0], client: ps[1]}, true
			}
			return sides{owner: ps[1], client: ps[0]}, true
		}
		return sides{}, false
	}
	// One participant (the other left or deleted the account) or none.
	var only string
	if len(ps) == 1 {
		only = ps[0]
	}
	ownerOnly := only != "" && (isCompany(only) || d.owners[chatexport.Fold(only)])
	switch {
	case ownerOnly && t.title != "" && chatexport.Fold(t.title) != chatexport.Fold(only):
		return sides{owner: only, client: t.title}, true
	case only != "" && !ownerOnly && chatexport.Fold(t.title) == chatexport.Fold(only):
		return sides{client: only}, true
	case only == "" && t.title != "" && !isCompany(t.title) && !d.owners[chatexport.Fold(t.title)]:
		return sides{client: t.title}, true
	}
	return sides{}, false
}

// fromCompany: the sender writes for the company.
func (d *Decoder) fromCompany(s sides, sender string) bool {
	f := chatexport.Fold(sender)
	if s.owner != "" {
		return f == chatexport.Fold(s.owner) || d.company.Is("", sender)
	}
	return f != chatexport.Fold(s.client)
}
