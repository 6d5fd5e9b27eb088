package whatsapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// plan is what the first reading of a chat found: the shape of its
// headers, the order of its dates, who the client is, or why it is
// skipped.
type plan struct {
	in    *input
	base  int64 // lines of the chats before it in the source
	lines int64 // lines of its chat text

	// bad: the file cannot be read as a chat (UTF-16, a broken zip, no
	// header at all): one bad record names it, the other chats go on.
	bad error
	// readErr stopped the first reading: the chat is read up to it,
	// then it is one bad record.
	readErr error
	// notChat: in a folder, a .txt without a single header (a document
	// sent in a chat, notes): skipped and counted.
	notChat bool
	// group: more than two people wrote, or a notice names a group.
	group    bool
	authors  []string // who wrote, as written, in order of first message
	messages int64    // headers of the chat's shape

	shape     shape
	order     order
	convID    string
	client    wire.Participant
	clientKey string // nameKey of the client's author name; "" when the client never wrote
}

// shapeStats gathers one header shape's lines of a chat.
type shapeStats struct {
	first    int64
	count    int64
	det      *detector
	authors  map[string]string // nameKey -> name as first written
	order    []string          // nameKeys in order of first message
	raw      map[string]bool   // authors as written, seen before
	notices  []string          // notices that may name a group (isGroupNotice), at most maxNotices
	authored int64             // messages with an author, notices left out
}

// maxShapes and maxAuthors bound what the scan keeps of a file that is
// not what it seems.
const (
	maxShapes  = 8
	maxAuthors = 16
	maxNotices = 32
)

// scan reads a chat once: the most common header shape is the file's, its
// dates give the order of day and month, its authors say who the client
// is. Problems of the file itself end up in plan.bad; problems only the
// user can settle (--date-order, --self) are the error.
func scan(ctx context.Context, in *input, spec sources.Spec, company *chatexport.Company, folder bool, maxLine int) (*plan, error) {
	pl := &plan{in: in}
	cf, err := in.open()
	if err != nil {
		pl.bad, pl.lines = err, 1
		return pl, nil
	}
	defer cf.Close()
	lr := newLineReader(cf.text, maxLine)
	if err := lr.checkEncoding(); err != nil {
		pl.bad, pl.lines = err, 1
		return pl, nil
	}
	stats := map[shape]*shapeStats{}
	for {
		if lr.line%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, _, err := lr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// What was read is imported; the error is a bad record
				// at the line it stopped on.
				pl.readErr = err
			}
			break
		}
		h, ok := parseHeader(line)
		if !ok {
			continue
		}
		st := stats[h.shape]
		if st == nil {
			if len(stats) >= maxShapes {
				continue
			}
			st = &shapeStats{first: lr.line, det: newDetector(h.shape.yearPos), authors: map[string]string{}, raw: map[string]bool{}}
			stats[h.shape] = st
		}
		st.count++
		st.det.add(h.date, lr.line, h.rawTime(line))
		content := string(line[h.content:])
		author, body, ok := splitAuthor(content)
		switch {
		case !ok:
			st.notice(content)
		case isSystemBody(body):
		case strings.HasPrefix(body, lrm) && isGroupNotice(body) && !isMarkedMedia(body):
			st.notice(body) // iOS writes a group's notices under the group's name
		case st.raw[author]:
			st.authored++
		default:
			st.authored++
			k := nameKey(author)
			if _, seen := st.authors[k]; !seen && len(st.authors) < maxAuthors {
				st.authors[k] = author
				st.order = append(st.order, k)
			}
			if len(st.raw) < maxAuthors {
				st.raw[author] = true
			}
		}
	}
	pl.lines = max(lr.line, 1)
	if pl.readErr != nil {
		pl.lines = lr.line + 1
	}
	var best *shapeStats
	for s, st := range stats {
		if best == nil || st.count > best.count || st.count == best.count && st.first < best.first {
			best, pl.shape = st, s
		}
	}
	if best == nil {
		if pl.readErr != nil {
			pl.bad, pl.readErr, pl.lines = fmt.Errorf("read stopped at line %d: %v", pl.lines, pl.readErr), nil, 1
			return pl, nil
		}
		if folder && !in.isZip {
			pl.notChat = true
		} else {
			pl.bad = errors.New("not a WhatsApp chat export: no line starts with a date and time (\"12/31/20, 10:15 PM - Name: text\" or \"[31.12.20, 22:15:32] Name: text\")")
		}
		return pl, nil
	}
	pl.messages = best.authored
	for _, k := range best.order {
		pl.authors = append(pl.authors, best.authors[k])
	}
	peer := in.peerName(cf)
	if len(best.authors) > 2 || best.namesGroup(append([]string{peer}, pl.authors...)) {
		pl.group = true
		return pl, nil
	}
	if best.authored == 0 {
		return pl, nil // only notices: nothing to import, nothing to ask for
	}
	if spec.DateOrder != "" {
		o, _ := orderOf(spec.DateOrder)
		if err := best.det.check(o); err != nil {
			return nil, fmt.Errorf("%s: --date-order %s does not fit this chat: %v", in.rel, spec.DateOrder, err)
		}
		pl.order = o
	} else {
		o, err := best.det.result()
		if err != nil {
			return nil, fmt.Errorf("%s: cannot tell the order of day and month: %v; give --date-order dmy, mdy or ymd (the order the phone writes dates in)", in.rel, err)
		}
		pl.order = o
	}
	if err := pl.decideClient(peer, company); err != nil {
		return nil, fmt.Errorf("%s: %w", in.rel, err)
	}
	return pl, nil
}

// notice keeps a notice that may say the chat is a group.
func (st *shapeStats) notice(text string) {
	if len(st.notices) < maxNotices && isGroupNotice(text) {
		st.notices = append(st.notices, text)
	}
}

// namesGroup reports whether a notice says the chat is a group ("Anna
// created group", "You added Bob") once the chat's own names are taken
// out of it: "Your security code with Acme Group GmbH changed" is about the
// peer, not a group.
func (st *shapeStats) namesGroup(names []string) bool {
	for _, n := range st.notices {
		t := strings.ToLower(cleanName(n))
		for _, name := range names {
			if name = strings.ToLower(name); name != "" {
				t = strings.ReplaceAll(t, name, "")
			}
		}
		if isGroupNotice(t) {
			return true
		}
	}
	return false
}

// decideClient finds the chat's client: the author the file name names
// (WhatsApp names the export after the chat, as the peer's messages are
// labelled); else, when the name does not say, the one author who is not
// the company (--self, --users). In a one-to-one chat every other author
// is the exporting account: the company.
func (pl *plan) decideClient(peer string, company *chatexport.Company) error {
	keys := make([]string, len(pl.authors))
	for i, a := range pl.authors {
		keys[i] = nameKey(a)
	}
	if peer != "" {
		pk := nameKey(peer)
		for i, k := range keys {
			if k == pk {
				if company.Is("", pl.authors[i]) {
					return fmt.Errorf("the chat's peer %q (from the file name) is also --self or a --users agent; the client cannot be the company", pl.authors[i])
				}
				pl.setClient(pl.authors[i], k)
				return nil
			}
		}
		if len(keys) <= 1 {
			pl.setClient(peer, "") // the peer never wrote; the one author is the exporter
			return nil
		}
	}
	var others []int
	for i, a := range pl.authors {
		if !company.Is("", a) {
			others = append(others, i)
		}
	}
	switch {
	case len(others) == 1:
		pl.setClient(pl.authors[others[0]], keys[others[0]])
		return nil
	case len(others) == 0:
		return fmt.Errorf("cannot tell who the client is: every author (%s) is --self or a --users agent, and the file name does not name the chat", strings.Join(quoted(pl.authors), ", "))
	case !company.Known():
		return fmt.Errorf("cannot tell the company's side from the client's: %s wrote, and the file name does not name the chat's peer; give --self NAME with the exporting account's name as the chat shows it",
			strings.Join(quoted(pl.authors), " and "))
	}
	return fmt.Errorf("cannot tell the company's side from the client's: neither %s is --self or a --users agent; give --self NAME with the exporting account's name as the chat shows it",
		strings.Join(quoted(pl.authors), " nor "))
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// setClient makes name the chat's client: its conversation_id and client
// id are "wa-" and a hash of the name folded (of the digits, for a phone
// number), so a later export of the same chat lands in the same Kommo chat.
func (pl *plan) setClient(name, authorKey string) {
	key := nameKey(name)
	sum := sha256.Sum256([]byte(key))
	pl.convID = "wa-" + hex.EncodeToString(sum[:8])
	pl.clientKey = authorKey
	pl.client = wire.Participant{ID: pl.convID, Name: name}
	if isPhone(name) {
		pl.client.Profile = &wire.Profile{Phone: name}
	}
}

// nameKey is how names are compared: a phone number by its digits, any
// other name folded (chatexport.Fold).
func nameKey(name string) string {
	name = cleanName(name)
	if isPhone(name) {
		return phoneDigits(name)
	}
	return chatexport.Fold(name)
}
