package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// The JSON of one message_N.json (Messenger and Instagram share it).
type dyiParticipant struct {
	Name string `json:"name"`
}

type dyiMedia struct {
	URI string `json:"uri"`
}

type dyiShare struct {
	Link                 string `json:"link"`
	ShareText            string `json:"share_text"`
	OriginalContentOwner string `json:"original_content_owner"`
}

type dyiMessage struct {
	SenderName   string     `json:"sender_name"`
	TimestampMS  int64      `json:"timestamp_ms"`
	Content      string     `json:"content"`
	Type         string     `json:"type"`
	Photos       []dyiMedia `json:"photos"`
	Videos       []dyiMedia `json:"videos"`
	AudioFiles   []dyiMedia `json:"audio_files"`
	Files        []dyiMedia `json:"files"`
	Gifs         []dyiMedia `json:"gifs"`
	Sticker      *dyiMedia  `json:"sticker"`
	Share        *dyiShare  `json:"share"`
	CallDuration *int64     `json:"call_duration"`
	Reactions    []struct{} `json:"reactions"` // only counted: a reaction is not a message
	IsUnsent     bool       `json:"is_unsent"`
}

// The JSON of one file of the E2EE export.
type e2eeMessage struct {
	SenderName string     `json:"senderName"`
	Text       string     `json:"text"`
	Timestamp  int64      `json:"timestamp"`
	Type       string     `json:"type"`
	IsUnsent   bool       `json:"isUnsent"`
	Media      []dyiMedia `json:"media"`
	Reactions  []struct{} `json:"reactions"`
}

// media lists, in the order a message's files are yielded.
const (
	listPhotos  = "photos"
	listVideos  = "videos"
	listAudio   = "audio_files"
	listFiles   = "files"
	listGifs    = "gifs"
	listSticker = "sticker"
	listE2EE    = "media"
)

// msg is one message as the export has it, repaired, before it is a record.
type msg struct {
	ts        int64 // unix milliseconds
	sender    string
	text      string
	typ       string
	media     []mediaRef
	share     *dyiShare
	call      bool
	unsent    bool
	reactions int
	raw       []byte // the message's JSON
	src       *source
	off       int64 // where raw starts in src
	idx       int   // its index in the file's messages
	bad       error // a value of the wrong type: the message is rejected
	badField  string
}

// source is a file a message came from.
type source struct {
	file string
	data []byte
	what string // legacy: where the message is, said in full
}

// at names where a message is, for an error: "<file> line L (offset O,
// messages[i])". It is worked out only for an error, since counting the
// lines before every message would cost time quadratic in the file's size.
func (m *msg) at() string {
	if m.src == nil {
		return "?"
	}
	if m.src.what != "" {
		return m.src.what + ", message " + strconv.Itoa(m.idx) + ")"
	}
	return fmt.Sprintf("%s line %d (offset %d, messages[%d])", m.src.file, lineAt(m.src.data, m.off), m.off, m.idx)
}

type mediaRef struct {
	list string // listPhotos, ...
	uri  string
}

// thread is one thread read whole.
type thread struct {
	ref          *threadRef
	participants []string
	title        string
	threadType   string
	msgs         []msg
}

// damaged is a thread whose JSON cannot be read: it is skipped whole.
type damaged struct {
	file   string
	offset int64
	line   int64
	raw    []byte // the bytes around the fault
	err    error
}

func (e *damaged) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s line %d (offset %d): %v: the thread is skipped", e.file, e.line, e.offset, e.err)
	}
	return fmt.Sprintf("%s: %v: the thread is skipped", e.file, e.err)
}

func (e *damaged) Unwrap() error { return e.err }

// errNotThread marks a JSON file beside the E2EE threads that is not one
// (the export's settings).
var errNotThread = errors.New("not a thread")

// readThread reads all files of a thread and puts its messages oldest
// first: Meta writes the newest messages in message_1.json and each file
// newest first, so the files are read from the highest N down, each file's
// messages reversed, and the whole stably sorted by time so that messages of
// the same millisecond keep their order in the file. A file that is already
// oldest first (as the E2EE export's are) is not reversed.
func readThread(fsys fs.FS, ref *threadRef) (*thread, error) {
	t := &thread{ref: ref}
	for _, f := range ref.files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, &damaged{file: f, err: err}
		}
		n := len(t.msgs)
		// Meta writes no byte-order mark, but an editor may add one.
		if err := t.parseFile(f, bytes.TrimPrefix(data, []byte("\ufeff"))); err != nil {
			return nil, err
		}
		part := t.msgs[n:]
		if len(part) > 1 && (part[0].ts > part[len(part)-1].ts || part[0].ts == part[len(part)-1].ts && !ref.e2ee) {
			slices.Reverse(part)
		}
	}
	slices.SortStableFunc(t.msgs, func(a, b msg) int { return compareTS(a.ts, b.ts) })
	return t, nil
}

// parseFile decodes one file's object key by key, and its messages one by
// one, so that each keeps its bytes and place for a report.
func (t *thread) parseFile(file string, data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(err error) error { return syntaxFault(file, data, dec.InputOffset(), err) }
	tok, err := dec.Token()
	if err != nil {
		return fail(err)
	}
	if tok != json.Delim('{') {
		if t.ref.e2ee {
			return errNotThread
		}
		return fail(fmt.Errorf("not a JSON object"))
	}
	var sawMessages bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		key, _ := tok.(string)
		switch {
		case key == "messages":
			sawMessages = true
			if err := t.parseMessages(file, data, dec); err != nil {
				return err
			}
		case key == "participants" && t.ref.e2ee:
			var names []string
			if err := dec.Decode(&names); err != nil {
				return fail(fmt.Errorf("participants: %w", err))
			}
			t.setParticipants(names)
		case key == "participants":
			var ps []dyiParticipant
			if err := dec.Decode(&ps); err != nil {
				return fail(fmt.Errorf("participants: %w", err))
			}
			names := make([]string, len(ps))
			for i, p := range ps {
				names[i] = p.Name
			}
			t.setParticipants(names)
		case key == "title" || key == "threadName":
			var s string
			if err := dec.Decode(&s); err != nil {
				return fail(fmt.Errorf("%s: %w", key, err))
			}
			t.title = repair(s)
		case key == "thread_type":
			var s string
			if err := dec.Decode(&s); err != nil {
				return fail(fmt.Errorf("thread_type: %w", err))
			}
			t.threadType = s
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(err)
	}
	if !sawMessages {
		if t.ref.e2ee {
			return errNotThread
		}
		return &damaged{file: file, err: errors.New(`no "messages" in the file`)}
	}
	return nil
}

// setParticipants keeps the names of the newest file (message_1.json is
// read last), repaired, without repeats.
func (t *thread) setParticipants(names []string) {
	t.participants = t.participants[:0]
	for _, n := range names {
		n = repair(n)
		if !slices.Contains(t.participants, n) {
			t.participants = append(t.participants, n)
		}
	}
}

func (t *thread) parseMessages(file string, data []byte, dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxFault(file, data, dec.InputOffset(), err)
	}
	if tok == nil {
		return nil // "messages": null
	}
	if tok != json.Delim('[') {
		return &damaged{file: file, offset: dec.InputOffset(), line: lineAt(data, dec.InputOffset()), err: errors.New(`"messages" is not a list`)}
	}
	src := &source{file: file, data: data}
	for i := 0; dec.More(); i++ {
		start := dec.InputOffset()
		var m msg
		var err error
		if t.ref.e2ee {
			var e e2eeMessage
			err = dec.Decode(&e)
			m = fromE2EE(&e)
		} else {
			var d dyiMessage
			err = dec.Decode(&d)
			m = fromDYI(&d)
		}
		end := dec.InputOffset()
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			m.bad, m.badField = typeError(te), te.Field
		case err != nil:
			return syntaxFault(file, data, start, err)
		}
		// The decoder's offset before a value is where the one before it
		// ended: skip the comma and the white space.
		for start < end && strings.IndexByte(", \t\r\n", data[start]) >= 0 {
			start++
		}
		m.raw = data[start:end]
		m.src, m.off, m.idx = src, start, i
		t.msgs = append(t.msgs, m)
	}
	if _, err := dec.Token(); err != nil {
		return syntaxFault(file, data, dec.InputOffset(), err)
	}
	return nil
}

// syntaxFault turns a decoding error into a damaged thread that names the
// exact place: the streaming decoder reports where the broken value began,
// json.Unmarshal's validation where the fault is.
func syntaxFault(file string, data []byte, at int64, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		var v struct{}
		if verr := json.Unmarshal(data, &v); errors.As(verr, &se) {
			at, err = se.Offset, verr
		}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		at, err = int64(len(data)), errors.New("the file ends in the middle of the JSON (cut short?)")
	}
	at = min(max(at, 0), int64(len(data)))
	lo, hi := max(at-120, 0), min(at+120, int64(len(data)))
	return &damaged{file: file, offset: at, line: lineAt(data, at), raw: data[lo:hi], err: err}
}

func lineAt(data []byte, off int64) int64 {
	return int64(bytes.Count(data[:min(off, int64(len(data)))], []byte{'\n'})) + 1
}

func fromDYI(d *dyiMessage) msg {
	m := msg{
		ts:        d.TimestampMS,
		sender:    repair(d.SenderName),
		text:      repair(d.Content),
		typ:       d.Type,
		call:      d.CallDuration != nil || strings.EqualFold(d.Type, "Call"),
		unsent:    d.IsUnsent,
		reactions: len(d.Reactions),
	}
	for _, l := range []struct {
		name  string
		items []dyiMedia
	}{{listPhotos, d.Photos}, {listVideos, d.Videos}, {listAudio, d.AudioFiles}, {listFiles, d.Files}, {listGifs, d.Gifs}} {
		for _, it := range l.items {
			m.media = append(m.media, mediaRef{list: l.name, uri: it.URI})
		}
	}
	if d.Sticker != nil && d.Sticker.URI != "" {
		m.media = append(m.media, mediaRef{list: listSticker, uri: d.Sticker.URI})
	}
	if s := d.Share; s != nil && (s.Link != "" || s.ShareText != "") {
		m.share = &dyiShare{Link: s.Link, ShareText: repair(s.ShareText), OriginalContentOwner: repair(s.OriginalContentOwner)}
	}
	return m
}

func fromE2EE(e *e2eeMessage) msg {
	m := msg{
		ts:        e.Timestamp,
		sender:    repair(e.SenderName),
		text:      repair(e.Text),
		typ:       e.Type,
		call:      strings.EqualFold(e.Type, "Call"),
		unsent:    e.IsUnsent,
		reactions: len(e.Reactions),
	}
	for _, it := range e.Media {
		m.media = append(m.media, mediaRef{list: listE2EE, uri: it.URI})
	}
	return m
}

// fileOf is the base name of a media uri.
func fileOf(uri string) string {
	uri, _, _ = strings.Cut(uri, "?") // a web address's query
	return path.Base(strings.ReplaceAll(uri, "\\", "/"))
}

// typeError says in JSON's words what a value of the wrong type was.
func typeError(te *json.UnmarshalTypeError) error {
	want := "a string"
	switch te.Type.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Bool:
		want = "true or false"
	case reflect.Slice:
		want = "a list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		want = "an object"
	}
	return fmt.Errorf("a JSON %s where the export has %s", te.Value, want)
}
