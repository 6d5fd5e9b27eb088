package telegram

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/sources"
)

// fuzzSeeds are one input per pitfall of the reference (and of this
// reader): the fuzzer mutates them.
func fuzzSeeds(t interface{ Fatal(...any) }) []string {
	var seeds []string
	for _, p := range []string{chatSample, accountSample} {
		b, err := os.ReadFile(filepath.Join(p, ResultFile))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	m := func(rest string) string {
		return oneChat(tgMsg(1, 1710000001, 'a', rest), tgMsg(2, 1710000002, 'o', text("reply")))
	}
	return append(seeds,
		m(`"text": "bell\x07 and C:\\x41 and \\\x41"`), // \xHH escapes beside an escaped backslash
		m(`"text": ["a", {"type": "custom_emoji", "text": "😁", "document_id": video_files/sticker (2).webm`+"\n"+`}]`), // 4.1.1
		m(`"text": "one", "text": "two"`), // a duplicate key (5.9.0 star gifts)
		m(`"text": ["see ", {"type": "link", "text": "https://x"}], "text_entities": [{"type": "plain", "text": "see "}]`),
		m(`"rich_message": {"blocks": [{"text": "rich"}]}`),
		oneChat(`{"id": 1, "type": "message", "date": "2020-01-01T10:00:00", "from": "Anna Client", "from_id": 42, "text": "old"}`),
		oneChat(`{"id": 1, "type": "service", "date_unixtime": "1710000001", "actor": "Anna Client", "actor_id": "user42", "action": "phone_call", "text": ""}`,
			`{"id": 2, "type": "unsupported"}`),
		m(`"photo": "(File not included. Change data exporting settings to download.)", "text": "cap"`),
		m(`"file": "../../etc/passwd", "media_type": "voice_message", "text": ""`),
		m(`"reply_to_message_id": 1, "forwarded_from": null, "edited_unixtime": "1710009999", "text": "x"`),
		m(`"location_information": null, "place_name": "Cafe", "text": ""`),
		m(`"contact_information": {"first_name": "A", "last_name": "", "phone_number": ""}, "text": ""`),
		m(`"poll": {"question": "?", "answers": []}, "text": ""`),
		`{"messages": [{"id": 2, "type": "message", "date_unixtime": "1", "from_id": "user9", "text": "sorted"}], "id": 9, "name": "Z", "type": "personal_chat"}`,
		`{"chats": {"list": [{"id": 9, "type": "personal_chat", "messages": []}]}, "contacts": {"list": [{"user_id": 9, "phone_number": "+1"}]}, "personal_information": {"user_id": 1}}`,
		"\xEF\xBB\xBF"+`{"name":"A","type":"personal_chat","id":1,"messages":[{"id":1,"type":"message","date_unixtime":"1","from_id":"user1","text":"min"}]}`,
		`{"name": "A", "type": "private_supergroup", "id": 3, "messages": [{"id": 1}, {"id": 2}]}`,
		oneChat(tgMsg(1, 1710000001, 'a', text("cut")))[:120],
		oneChat(`{"id": 2, "type": "message", "text": "unterminated}`, tgMsg(3, 1, 'a', text("x"))),
		oneChat(tgMsg(3, 1, 'a', text("c")), tgMsg(1, 1, 'a', text("a")), tgMsg(2, 1, 'a', text("b"))), // out of id order
		`{"id": 99999999999999999999, "type": "personal_chat", "messages": [[[[[[[[]]]]]]]]}`,
		`[]`, ``, `{`, `{"messages": [`, `{"a":`, `{"chats": 5}`,
	)
}

// FuzzTelegram: any bytes as result.json never panic; every bad record
// names the file and a line that grows; a fatal error names the file.
// Read once with a small buffer (boundaries fall everywhere) and a small
// size limit, once as a user would.
func FuzzTelegram(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(s))
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, ResultFile)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for i, spec := range []sources.Spec{
			{Path: dir, MaxRecordBytes: 4096, Users: botUsers()},
			{Path: path, Location: berlin, MediaMissing: sources.MediaMissingText, Self: []string{"Olga Agent"}},
		} {
			res, err := tryRead(spec, []int{61, 0}[i])
			if err != nil {
				// Open refuses it, or tryRead found a broken promise.
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("an error that does not name the file: %v", err)
				}
				if strings.Contains(err.Error(), "want file") || strings.Contains(err.Error(), "after line") {
					t.Fatal(err)
				}
				continue
			}
			if res.fatal != nil {
				var re *sources.ReadError
				if !errors.As(res.fatal, &re) || re.Name != path {
					t.Fatalf("a fatal error that is not a ReadError naming the file: %#v", res.fatal)
				}
			}
			for _, le := range res.errs {
				if le.Field == "" && le.Err != nil && !strings.Contains(le.Error(), "byte offset") && !errors.Is(le, sources.ErrTooLarge) {
					t.Fatalf("a bad record that says neither where nor which field: %v", le)
				}
			}
		}
	})
}
