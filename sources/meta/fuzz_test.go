package meta

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kommo-import/kommo-import/sources"
)

// FuzzMeta puts the input in an export as a thread's message_1.json and as
// an E2EE export's file, beside a good thread, and reads it all: it must not
// panic, every error must be a *LineError naming the file it is about (and
// for a damaged thread where in it), the good thread must be read, and the
// records' lines must rise.
func FuzzMeta(f *testing.F) {
	for _, glob := range []string{
		samples + "messenger/*/*/messages/*/*/message_*.json",
		samples + "messenger/pre2024/messages/*/*/message_*.json",
		samples + "messenger/e2ee/*.json",
		samples + "instagram/2025/*/messages/*/*/message_*.json",
	} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err == nil {
				f.Add(b)
			}
		}
	}
	for _, s := range []string{
		"", "{", "[]", "null", `{"messages": null}`, `{"messages": [null, 1, "x", {}]}`,
		"\ufeff{\"participants\":[],\"messages\":[]}",
		`{"participants": [{"name": "Ã"}, {"name": "Me"}], "title": "Ã", "messages": [{"sender_name": "Ã", "timestamp_ms": 1700000000000, "content": "\u00c3\u00a9", "photos": [{"uri": "../x"}, {"uri": "/abs"}, {"uri": "C:\\x"}, {"uri": ""}]}]}`,
		`{"participants": ["A", "Me"], "threadName": "A", "messages": [{"senderName": "A", "timestamp": 1700000000000, "text": "hi", "media": [{"uri": "./media/x.jpg"}]}]}`,
		`{"participants": [{"name": "A"}, {"name": "Me"}], "title": "A", "messages": [{"sender_name": "A", "timestamp_ms": 9223372036854775807, "content": "x"}, {"sender_name": "A", "timestamp_ms": -1, "content": "y"}, {"sender_name": "A", "timestamp_ms": 1e30}]}`,
		`{"participants": [{"name": "A"}, {"name": "Me"}], "title": "A", "messages": [{"sender_name": "A", "timestamp_ms": 1700000000000, "share": {"link": "javascript:alert(1)"}, "type": "Share"}]}`,
		strings.Repeat("[", 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		fsys := fstest.MapFS{
			"messages/inbox/fuzz_1111111/message_1.json": {Data: input},
			"messages/inbox/zgood_2222222/message_1.json": {Data: []byte(
				`{"participants":[{"name":"Good"},{"name":"Me"}],"title":"Good","messages":[{"sender_name":"Good","timestamp_ms":1700000000000,"content":"good"}]}`)},
			"messages/Fuzz_1.json": {Data: input},
			"messages/media/x.jpg": {Data: []byte("jpeg")},
		}
		spec := sources.Spec{Kind: KindMessenger, Path: "export", Now: testNow, MediaMissing: sources.MediaMissingText}
		r, _, err := openFS(spec, &export{fsys: fsys, dir: "/export", Closer: io.NopCloser(nil)})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer r.Close()
		var lastLine int64
		var good bool
		for n := 0; ; n++ {
			rec, err := r.Next(t.Context())
			if err == io.EOF {
				break
			}
			var le *sources.LineError
			if errors.As(err, &le) {
				msg := le.Error()
				if !strings.Contains(msg, "fuzz_1111111") && !strings.Contains(msg, "Fuzz_1.json") && le.Field != "sender.ref_id" && !strings.HasPrefix(le.Field, "message") {
					t.Fatalf("an error that names no file: %v", le)
				}
				if le.Field == "" && !strings.Contains(msg, "offset") && !strings.Contains(msg, `no "messages"`) {
					t.Fatalf("a damaged thread without its place: %v", le)
				}
				if le.Line <= lastLine {
					t.Fatalf("error at line %d after line %d", le.Line, lastLine)
				}
				lastLine = le.Line
				continue
			}
			if err != nil {
				t.Fatalf("not a *LineError: %v", err)
			}
			if rec.Line <= lastLine {
				t.Fatalf("record at line %d after line %d", rec.Line, lastLine)
			}
			lastLine = rec.Line
			good = good || rec.Payload.ConversationID == "fb-2222222"
			if n > 10*len(input)+10 {
				t.Fatal("more records than the input can hold")
			}
		}
		if !good {
			t.Fatal("the good thread was not read")
		}
	})
}
