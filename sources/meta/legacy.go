package meta

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
)

// Instagram's exports of 2018-2020 hold every conversation in one
// messages.json at the top: a list of {"participants": [usernames],
// "conversation": [messages, newest first]}, each message with "sender"
// (a username), "created_at" (RFC 3339), "text", and for shared posts
// "media_share_url", "media_share_caption", "media_owner"; photos as
// "media_url" or "media" (pdpl-cli's instagram-2018 importer,
// michabirklbauer/instagram_json_viewer). The file is read one conversation
// at a time.
type legacyConv struct {
	Participants []string    `json:"participants"`
	Conversation []legacyMsg `json:"conversation"`
}

// Fields whose type is not certain are read raw and used when they are
// strings, so that an odd one costs that field, not the message.
type legacyMsg struct {
	Sender            string          `json:"sender"`
	CreatedAt         string          `json:"created_at"`
	Text              json.RawMessage `json:"text"`
	Heart             json.RawMessage `json:"heart"`
	MediaURL          json.RawMessage `json:"media_url"`
	Media             json.RawMessage `json:"media"`
	MediaShareURL     json.RawMessage `json:"media_share_url"`
	MediaShareCaption json.RawMessage `json:"media_share_caption"`
	MediaOwner        json.RawMessage `json:"media_owner"`
	Likes             []struct{}      `json:"likes"`
}

type legacyReader struct {
	file  string
	f     fs.File
	dec   *json.Decoder
	owner map[string]bool // folded usernames of the export's owner
	n     int
	done  bool
}

// openLegacy opens messages.json and learns the owner: the --self names, the
// username of profile.json beside it, or else the participant of the most
// conversations (the owner is in all of them).
func openLegacy(fsys fs.FS, file string, company *chatexport.Company) (*legacyReader, error) {
	lr := &legacyReader{file: file, owner: map[string]bool{}}
	if b, err := fs.ReadFile(fsys, path.Join(path.Dir(file), "profile.json")); err == nil {
		var p struct {
			Username string `json:"username"`
		}
		if json.Unmarshal(b, &p) == nil && p.Username != "" {
			lr.owner[chatexport.Fold(p.Username)] = true
		}
	}
	if len(lr.owner) == 0 && !company.Known() {
		counts := map[string]int{}
		err := eachLegacy(fsys, file, func(c *struct {
			Participants []string `json:"participants"`
		}) {
			for _, p := range slices.Compact(slices.Sorted(slices.Values(c.Participants))) {
				counts[chatexport.Fold(p)]++
			}
		})
		if err != nil {
			return nil, err
		}
		best, most, tie := "", 0, false
		for p, n := range counts {
			switch {
			case n > most:
				best, most, tie = p, n, false
			case n == most:
				tie = true
			}
		}
		if best != "" && !tie {
			lr.owner[best] = true
		}
	}
	f, err := fsys.Open(file)
	if err != nil {
		return nil, err
	}
	lr.f = f
	lr.dec = json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	if tok, err := lr.dec.Token(); err != nil || tok != json.Delim('[') {
		f.Close()
		return nil, fmt.Errorf("%s: not a list of conversations", file)
	}
	return lr, nil
}

// eachLegacy decodes each element of the file's list into a new T.
func eachLegacy[T any](fsys fs.FS, file string, fn func(*T)) error {
	f, err := fsys.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("%s: not a list of conversations", file)
	}
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				continue
			}
			return nil // the reading pass reports where the file is damaged
		}
		fn(&v)
	}
	return nil
}

// next reads conversations into d.items until one yields records; false at
// the end of the file.
func (lr *legacyReader) next(d *Decoder) (bool, error) {
	for !lr.done {
		if !lr.dec.More() {
			lr.done = true
			lr.f.Close()
			return false, nil
		}
		var raw json.RawMessage
		err := lr.dec.Decode(&raw)
		lr.n++
		if err != nil {
			lr.done = true
			defer lr.f.Close()
			d.counts[SkipDamagedChat]++
			at := lr.dec.InputOffset()
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = errors.New("the file ends in the middle of the JSON (cut short?)")
				if fi, serr := lr.f.Stat(); serr == nil {
					at = fi.Size()
				}
			}
			d.pending = append(d.pending, item{err: &sources.LineError{Err: fmt.Errorf(
				"%s offset %d (conversation %d): %v: the rest of the file cannot be read", lr.file, at, lr.n, err)}})
			return true, nil
		}
		start := lr.dec.InputOffset() - int64(len(raw))
		var c legacyConv
		var te *json.UnmarshalTypeError
		if err := json.Unmarshal(raw, &c); errors.As(err, &te) || err != nil {
			d.counts[SkipDamagedChat]++
			why := err
			if te != nil {
				why = fmt.Errorf("%s: %w", te.Field, typeError(te))
			}
			d.pending = append(d.pending, item{raw: raw, err: &sources.LineError{Field: fieldOf(te), Err: fmt.Errorf(
				"%s offset %d (conversation %d): %v: the conversation is skipped", lr.file, start, lr.n, why)}})
			return true, nil
		}
		lr.emit(d, &c, start)
		if len(d.pending) > 0 || d.cur != nil {
			return true, nil
		}
	}
	return false, nil
}

func (lr *legacyReader) emit(d *Decoder, c *legacyConv, offset int64) {
	t := &thread{}
	t.setParticipants(c.Participants)
	sorted := slices.Sorted(slices.Values(t.participants))
	ref := &threadRef{section: "legacy", key: "dm-" + strings.Join(sorted, "+"), files: []string{lr.file}, legacy: true, base: path.Dir(lr.file), root: path.Dir(lr.file)}
	t.ref = ref
	if isGroup(t) {
		d.counts[SkipGroupChat]++
		if len(c.Conversation) > 0 {
			d.counts[SkipChatMessage] += int64(len(c.Conversation))
		}
		return
	}
	at := fmt.Sprintf("%s offset %d (conversation %d", lr.file, offset, lr.n)
	src := &source{file: lr.file, what: at}
	for i, lm := range c.Conversation {
		m := msg{sender: repair(lm.Sender), text: repair(rawString(lm.Text)), reactions: len(lm.Likes), src: src, idx: i}
		if m.text == "" {
			m.text = rawString(lm.Heart)
		}
		if ts, err := time.Parse(time.RFC3339Nano, lm.CreatedAt); err == nil {
			m.ts = ts.UnixMilli()
		}
		if u := rawString(lm.MediaShareURL); u != "" {
			m.share = &dyiShare{Link: u, ShareText: repair(rawString(lm.MediaShareCaption)), OriginalContentOwner: rawString(lm.MediaOwner)}
		} else if u := cmp.Or(rawString(lm.MediaURL), rawString(lm.Media)); u != "" {
			m.media = []mediaRef{{list: listE2EE, uri: u}}
		}
		t.msgs = append(t.msgs, m)
	}
	slices.Reverse(t.msgs) // newest first in the file
	slices.SortStableFunc(t.msgs, func(a, b msg) int { return compareTS(a.ts, b.ts) })
	var s sides
	for _, p := range t.participants {
		if lr.owner[chatexport.Fold(p)] || d.company.Is("", p) {
			s.owner = p
		}
	}
	for _, p := range t.participants {
		if p != s.owner {
			s.client = p
		}
	}
	if s.owner == "" || s.client == "" {
		d.counts[SkipUnknownOwner]++
		d.pending = append(d.pending, item{err: &sources.LineError{Field: "participants", Err: fmt.Errorf(
			"%s): cannot tell which of %q is the export's owner: give --self USERNAME; the conversation is skipped", at, t.participants)}})
		return
	}
	d.emit(t, s)
}

func fieldOf(te *json.UnmarshalTypeError) string {
	if te == nil {
		return ""
	}
	return te.Field
}

func rawString(raw json.RawMessage) string {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func compareTS(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
