package meta

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// current is a thread whose messages are being turned into records.
type current struct {
	t                    *thread
	s                    sides
	idx                  int // the next message
	ids                  *chatexport.IDs
	company              map[string]bool // sender -> writes for the company: two names a thread, folded once each
	tsField, senderField string
}

// emit starts yielding a one-to-one thread's messages, oldest first.
//
// Ids: the conversation is the prefix and the thread's key ("fb-<thread
// id>"), its client "fb-user-<thread id>" (display names are all the export
// has, and two clients may share one). A message's msgid is
// chatexport.IDs over (thread key, timestamp_ms, side, text and kinds of
// file), plus its ordinal among identical ones; the side (company or
// client) stands for the author, whose display name changes when they
// rename. A message with several files becomes one record per file, the
// second one's msgid suffixed "-2" and so on; the text goes with the first.
func (d *Decoder) emit(t *thread, s sides) {
	ref := t.ref
	client := s.client
	if strings.TrimSpace(client) == "" {
		client = title(d.kind) + " user" // Meta's own name for a deleted account
	}
	d.chat = chatexport.Chat{ID: d.prefix + ref.key, Client: wire.Participant{ID: d.prefix + "user-" + ref.key, Name: client}}
	c := &current{t: t, s: s, ids: chatexport.NewIDs(d.prefix), company: map[string]bool{},
		tsField: "timestamp_ms", senderField: "sender_name"}
	switch {
	case ref.e2ee:
		c.tsField, c.senderField = "timestamp", "senderName"
	case ref.legacy:
		c.tsField, c.senderField = "created_at", "sender"
	}
	d.cur = c
}

// convertNext turns the current thread's next messages into records until
// one gives any (skipped messages give none); false at the thread's end,
// which lets the thread go.
func (d *Decoder) convertNext() bool {
	c := d.cur
	if c == nil {
		return false
	}
	for c.idx < len(c.t.msgs) {
		m := &c.t.msgs[c.idx]
		c.idx++
		d.convert(c, m)
		*m = msg{} // its strings and bytes are the records' now, or garbage
		if len(d.pending) > 0 {
			return true
		}
	}
	d.cur = nil
	return false
}

// convert turns one message into records in d.pending: none when it is
// skipped, one a file, or one rejected record.
func (d *Decoder) convert(c *current, m *msg) {
	ref := c.t.ref
	bad := func(field string, err error) {
		d.pending = append(d.pending, item{raw: m.raw, err: &sources.LineError{Field: field, Err: fmt.Errorf("%s: %w", m.at(), err)}})
	}
	switch {
	case m.bad != nil:
		bad(m.badField, m.bad)
		return
	case m.unsent:
		d.counts[SkipUnsent]++
		return
	case m.call:
		d.counts[SkipCall]++
		return
	case strings.EqualFold(m.typ, "Subscribe") || strings.EqualFold(m.typ, "Unsubscribe"):
		d.counts[SkipServiceMessage]++
		return
	}
	if m.reactions > 0 {
		d.counts[SkipReaction] += int64(m.reactions)
	}
	switch {
	case m.ts <= 0:
		bad(c.tsField, fmt.Errorf("%w: the message has no time", sources.ErrRequired))
		return
	case m.ts < minMS || m.ts > d.now().Add(24*time.Hour).UnixMilli():
		// Validate would say so too, but not where in the export.
		bad(c.tsField, fmt.Errorf("%d is not a time in milliseconds between 2000 and tomorrow", m.ts))
		return
	}
	if strings.TrimSpace(m.sender) == "" {
		bad(c.senderField, fmt.Errorf("%w: the message has no author", sources.ErrRequired))
		return
	}
	text := m.text
	var shared *wire.SharedPost
	if m.share != nil {
		text = withShare(text, m.share)
		// A legacy Instagram share's link is the post's image on a CDN,
		// not the post: it stays text.
		if u := m.share.Link; !ref.legacy && (strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://")) {
			shared = &wire.SharedPost{URL: u, Type: wire.SharedPostType}
		}
	}
	if strings.TrimSpace(text) == "" && len(m.media) == 0 {
		d.counts[SkipUnsupported]++
		return
	}
	fromCompany, ok := c.company[m.sender]
	if !ok {
		fromCompany = d.fromCompany(c.s, m.sender)
		c.company[m.sender] = fromCompany
	}
	side := "client"
	if fromCompany {
		side = "company"
	}
	msgid := c.ids.Next(ref.key, strconv.FormatInt(m.ts, 10), side, text+mediaSignature(m.media))
	base := chatexport.Message{
		MsgID:       msgid,
		Time:        time.UnixMilli(m.ts),
		Author:      m.sender,
		FromCompany: fromCompany,
		Text:        text,
	}
	if len(m.media) == 0 {
		d.pending = append(d.pending, item{m: base, shared: shared, raw: m.raw})
		return
	}
	for k, mr := range m.media {
		it := item{m: base, raw: m.raw}
		if k > 0 {
			it.m.MsgID = msgid + "-" + strconv.Itoa(k+1)
			it.m.Text = ""
		} else {
			it.shared = shared
		}
		media, err := d.resolve(ref, mr)
		if err != nil {
			bad(fmt.Sprintf("%s[%d].uri", mr.list, k), err)
			continue
		}
		it.media = media
		it.m.Media = &it.media // Next points it at the item's own copy
		d.pending = append(d.pending, it)
	}
}

var minMS = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// withShare is a shared link as text: the message's words, the share's
// text and the link, each once.
func withShare(text string, s *dyiShare) string {
	parts := make([]string, 0, 3)
	if strings.TrimSpace(text) != "" {
		parts = append(parts, text)
	}
	if s.ShareText != "" && !strings.Contains(text, s.ShareText) {
		parts = append(parts, s.ShareText)
	}
	if s.Link != "" && !strings.Contains(text, s.Link) {
		parts = append(parts, s.Link)
	}
	return strings.Join(parts, "\n")
}

// mediaSignature tells apart, in a msgid, messages without text that differ
// only in their files: the kinds and counts, not the paths (a thread's
// folder name changes when the other person renames).
func mediaSignature(media []mediaRef) string {
	if len(media) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte(0x1f)
	for _, m := range media {
		b.WriteString(m.list)
		b.WriteByte(',')
	}
	return b.String()
}

// Kommo types of the export's media lists. GIFs are pictures: Messenger
// stores them as .gif files, which Kommo's image view animates and a video
// player cannot play; one stored as a video file goes as a video.
func mediaType(list, uri string) string {
	ext := strings.ToLower(path.Ext(fileOf(uri)))
	switch list {
	case listPhotos:
		return wire.TypePicture
	case listVideos:
		return wire.TypeVideo
	case listAudio:
		return wire.TypeVoice // voice clips: Messenger's and Instagram's only audio
	case listSticker:
		return wire.TypeSticker
	case listGifs:
		if videoExt[ext] {
			return wire.TypeVideo
		}
		return wire.TypePicture
	case listE2EE:
		switch {
		case pictureExt[ext]:
			return wire.TypePicture
		case videoExt[ext]:
			return wire.TypeVideo
		case audioExt[ext]:
			return wire.TypeVoice
		}
	}
	return wire.TypeFile
}

var (
	pictureExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".gif": true, ".heic": true, ".bmp": true}
	videoExt   = map[string]bool{".mp4": true, ".mov": true, ".webm": true, ".m4v": true, ".3gp": true}
	audioExt   = map[string]bool{".m4a": true, ".aac": true, ".mp3": true, ".ogg": true, ".opus": true, ".wav": true, ".amr": true}
)

// Why a media record has no file.
const (
	missingNotInExport = "not in the export"
	missingInZip       = "inside the .zip: unzip the export to send the file"
	missingWebLink     = "a web address in the export, not a file"
	missingEmpty       = "an empty file in the export"
	missingNoURI       = "the export names no file"
)

var (
	errAbsolute = errors.New("an absolute path: media must be inside the export")
	errOutside  = errors.New("a path leading out of the export (..)")
)

// resolve finds a media uri's file: relative to the parent of messages/
// (where Meta writes them from), the export's top and its activity folders,
// or for the E2EE export the JSON file's folder. An absolute path or one
// leading out of the export is an error for the record; a file that is not
// there is media without a file.
func (d *Decoder) resolve(ref *threadRef, mr mediaRef) (chatexport.Media, error) {
	uri := strings.ReplaceAll(mr.uri, "\\", "/")
	m := chatexport.Media{Type: mediaType(mr.list, uri), FileName: fileOf(uri)}
	missing := func(why string) (chatexport.Media, error) {
		m.Missing = why // the Reader counts it, for every format
		return m, nil
	}
	switch {
	case strings.TrimSpace(uri) == "":
		m.FileName = ""
		return missing(missingNoURI)
	case strings.Contains(uri, "://"):
		return missing(missingWebLink)
	case path.IsAbs(uri) || len(uri) > 1 && uri[1] == ':':
		return m, errAbsolute
	}
	clean := path.Clean(uri)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return m, errOutside
	}
	var cands []string
	add := func(base, rel string) {
		c := path.Join(base, rel)
		for _, x := range cands {
			if x == c {
				return
			}
		}
		cands = append(cands, c)
	}
	if ref.e2ee {
		add(path.Dir(ref.files[0]), clean)
	}
	add(ref.base, clean)
	if i := strings.Index(clean, "messages/"); i >= 0 && (i == 0 || clean[i-1] == '/') {
		add(ref.root, clean[i+len("messages/"):]) // the messages folder itself was given
	}
	add(".", clean)
	for _, dirs := range layouts {
		for _, dir := range dirs {
			add(path.Dir(dir), clean)
		}
	}
	for _, c := range cands {
		if !fs.ValidPath(c) || !d.dirExists(path.Dir(c)) {
			continue
		}
		fi, err := fs.Stat(d.exp.fsys, c)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		m.Size = fi.Size()
		switch {
		case fi.Size() == 0:
			return missing(missingEmpty)
		case d.exp.dir == "":
			return missing(missingInZip)
		}
		m.Path = d.exp.local(c)
		return m, nil
	}
	return missing(missingNotInExport)
}

// dirExists caches, for the current thread, whether a folder exists: an
// export downloaded without media would otherwise cost a failed stat per
// place a file is looked for.
func (d *Decoder) dirExists(dir string) bool {
	ok, seen := d.dirs[dir]
	if !seen {
		fi, err := fs.Stat(d.exp.fsys, dir)
		ok = err == nil && fi.IsDir()
		d.dirs[dir] = ok
	}
	return ok
}
