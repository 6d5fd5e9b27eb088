package meta

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

var testNow = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

// result is everything one read of an export gave.
type result struct {
	recs    []sources.Record
	errs    []*sources.LineError
	skipped map[string]int64
	stats   sources.Stats
}

// readAll reads spec to the end; a fatal error fails the test.
func readAll(t *testing.T, spec sources.Spec) result {
	t.Helper()
	if spec.Now == nil {
		spec.Now = testNow
	}
	r, d, err := open(t.Context(), spec)
	require.NoError(t, err)
	defer r.Close()
	var res result
	for {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			res.errs = append(res.errs, le)
			continue
		}
		require.NoError(t, err)
		res.recs = append(res.recs, rec)
	}
	res.skipped, res.stats = d.Skipped(), r.Stats()
	return res
}

// brief is a record in one line: conversation, direction, sender, and what
// it shows. A media message reads as the text it becomes while local files
// cannot be hosted ("[picture: p.jpg] caption"), so the line is the same
// whether the Reader turns it into that text or leaves the file: URL.
func brief(p *wire.Payload) string {
	dir := "in "
	if p.Receiver != nil {
		dir = "out"
	}
	s := p.ConversationID + " " + dir + " " + p.Sender.Name + ": " + strconv.Quote(shown(p.Message))
	if p.Message.SharedPost != nil {
		s += " +shared " + p.Message.SharedPost.URL
	}
	return s
}

func shown(m *wire.Message) string {
	if m.Type == wire.TypeText {
		return m.Text
	}
	s := "[" + m.Type
	if m.FileName != "" {
		s += ": " + m.FileName
	}
	s += "]"
	if m.Text != "" {
		s += " " + m.Text
	}
	return s
}

func briefs(res result) []string {
	out := make([]string, len(res.recs))
	for i := range res.recs {
		out[i] = brief(&res.recs[i].Payload)
	}
	return out
}

func errTexts(res result) []string {
	out := make([]string, len(res.errs))
	for i, e := range res.errs {
		out[i] = e.Error()
	}
	return out
}

// mojibake writes s as Meta does: each UTF-8 byte as its own code point.
func mojibake(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}

// mojibakeAll applies mojibake to every string of a JSON-like value.
func mojibakeAll(v any) any {
	switch x := v.(type) {
	case string:
		return mojibake(x)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = mojibakeAll(x[i])
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i := range x {
			out[i] = mojibake(x[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = mojibakeAll(e)
		}
		return out
	}
	return v
}

// writeFile writes data under root, making the folders.
func writeFile(t testing.TB, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, data, 0o644))
}

// writeJSON writes v as Meta does (indented, strings as mojibake).
func writeJSON(t testing.TB, root, rel string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(mojibakeAll(v), "", "  ")
	require.NoError(t, err)
	writeFile(t, root, rel, b)
}

// m is one DYI message; ts in seconds after base.
func m(sender string, ts int64, content string, extra ...any) map[string]any {
	msg := map[string]any{"sender_name": sender, "timestamp_ms": baseMS + ts*1000, "type": "Generic"}
	if content != "" {
		msg["content"] = content
	}
	for i := 0; i+1 < len(extra); i += 2 {
		msg[extra[i].(string)] = extra[i+1]
	}
	return msg
}

const baseMS = int64(1_700_000_000_000) // 2023-11-14

// dyi is one message_N.json: the messages are given oldest first and
// written newest first, as Meta does.
func dyi(title string, participants []string, oldestFirst ...map[string]any) map[string]any {
	ps := make([]any, len(participants))
	for i, p := range participants {
		ps[i] = map[string]any{"name": p}
	}
	msgs := make([]any, len(oldestFirst))
	for i, x := range oldestFirst {
		msgs[len(msgs)-1-i] = x
	}
	return map[string]any{"participants": ps, "messages": msgs, "title": title, "is_still_participant": true,
		"thread_type": "Regular", "magic_words": []any{}}
}

func texts(res result) []string {
	out := make([]string, len(res.recs))
	for i, r := range res.recs {
		out[i] = r.Payload.Message.Text
	}
	return out
}

func chatexportFileURL(p string) string { return chatexport.FileURL(p) }

// decoded is a record as the decoder gives it, before the Reader's rules.
type decoded struct {
	p   wire.Payload
	err error
}

// decodeAll runs the decoder alone: what it resolved (local file paths,
// sizes) before the Reader turns unhosted files into text.
func decodeAll(t *testing.T, spec sources.Spec) []decoded {
	t.Helper()
	r, d, err := open(t.Context(), spec)
	require.NoError(t, err)
	defer r.Close()
	var out []decoded
	for {
		var p wire.Payload
		_, err := d.Next(t.Context(), &p)
		if err == io.EOF {
			return out
		}
		out = append(out, decoded{p, err})
	}
}
