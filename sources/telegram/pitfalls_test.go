package telegram

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// TestEveryBufferBoundary reads both samples through read buffers of 1 to 9
// bytes and a few odd sizes, so every string, escape, bracket and value
// crosses a boundary somewhere: the records, errors, lines and counts are
// those of the normal buffer.
func TestEveryBufferBoundary(t *testing.T) {
	t.Parallel()
	for _, path := range []string{chatSample, accountSample} {
		spec := sources.Spec{Path: path, Users: botUsers()}
		want := read(t, spec, 0)
		require.NotEmpty(t, want.errs, "without --media-missing text some are rejected: errors cross boundaries too")
		for _, size := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 61, 127, 1000} {
			got := read(t, spec, size)
			require.Equal(t, lineRecords(want), lineRecords(got), "buffer of %d bytes", size)
			require.Equal(t, want.errTexts(), got.errTexts(), "buffer of %d bytes", size)
			require.Equal(t, want.stats, got.stats, "buffer of %d bytes", size)
		}
	}
}

// lineRecords is what a record is to staging: its position and payload.
func lineRecords(r result) []sources.Record {
	out := []sources.Record{}
	for _, rec := range r.records {
		out = append(out, sources.Record{Payload: rec.Payload, Line: rec.Line, Offset: rec.Offset, Raw: rec.Raw})
	}
	return out
}

func TestRepair(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"text": "a\x0Bb"}`, `{"text": "a\u000Bb"}`},
		{`{"text": "C:\\x41"}`, `{"text": "C:\\x41"}`},         // an escaped backslash: the text \x41
		{`{"text": "C:\\\x41"}`, `{"text": "C:\\\u0041"}`},     // an escaped backslash, then \x41
		{`{"text": "\x1", "b": 1}`, `{"text": "\x1", "b": 1}`}, // not two hex digits: left for the decoder to refuse
		{"{\n \"document_id\": video_files/sticker (2).webm\n}", "{\n \"document_id\": \"video_files/sticker (2).webm\"\n}"},
		{"{\"a\": stickers/x \"y\".webp,\n\"b\": 1}", "{\"a\": \"stickers/x \\\"y\\\".webp\",\n\"b\": 1}"},
		{`{"a": true, "b": null, "c": false, "d": -1, "e": [1, nullx]}`, `{"a": true, "b": null, "c": false, "d": -1, "e": [1, "nullx]}"`},
	}
	for _, tt := range tests {
		got, _, _ := repair(nil, []byte(tt.in))
		require.Equal(t, tt.want, string(got), tt.in)
	}
	// Offsets map back through the repairs.
	in := []byte(`{"t": "\x01\x02", "x": oops}`)
	out, edits, changed := repair(nil, in)
	require.True(t, changed)
	require.Equal(t, `{"t": "\u0001\u0002", "x": "oops}"`, string(out))
	require.EqualValues(t, strings.Index(string(in), `"x"`), origOffset(edits, int64(strings.Index(string(out), `"x"`))))
}

// TestText: text as a string or a mixed array, text_entities preferred,
// rich_message when there is neither.
func TestText(t *testing.T) {
	t.Parallel()
	dir := export(t, oneChat(
		tgMsg(1, 1710000001, 'a', `"text": "plain string"`),
		tgMsg(2, 1710000002, 'a', `"text": ["see ", {"type": "link", "text": "https://x.example"}, " now"]`),
		tgMsg(3, 1710000003, 'a', `"text": "stale", "text_entities": [{"type": "bold", "text": "fresh"}, {"type": "mention_name", "text": "Bob", "user_id": 5}]`),
		tgMsg(4, 1710000004, 'a', `"rich_message": {"blocks": [{"type": "paragraph", "text": "rich one"}, {"type": "paragraph", "text": "rich two"}]}`),
		tgMsg(5, 1710000005, 'a', `"text": {"odd": true}`),
		tgMsg(6, 1710000006, 'a', `"text": "dup one", "text": "dup two"`),
		tgMsg(7, 1710000007, 'a', `"text": ["fine", 7]`),
	))
	res := read(t, sources.Spec{Path: dir}, 0)
	texts := map[string]string{}
	for _, rec := range res.records {
		texts[rec.Payload.MsgID] = rec.Payload.Message.Text
	}
	require.Equal(t, map[string]string{
		"tg-42-1": "plain string", "tg-42-2": "see https://x.example now", "tg-42-3": "freshBob",
		"tg-42-4": "rich one\nrich two", "tg-42-6": "dup two",
	}, texts)
	require.Len(t, res.errs, 2)
	require.Equal(t, "text", res.errs[0].Field)
	require.Regexp(t, `:10: text: line 10, byte offset \d+: neither a string nor an array: \{"odd": true\}`, res.errs[0].Error())
	raw, err := os.ReadFile(filepath.Join(dir, ResultFile))
	require.NoError(t, err)
	seven := strings.Index(string(raw), `7]`)
	require.Equal(t, "text", res.errs[1].Field)
	require.Contains(t, res.errs[1].Error(), ":12: text: message 7: line 12, byte offset "+strconv.Itoa(seven)+": want a string or an object, found '7'")
}

// TestOldExportTimes: before date_unixtime, date is the exporting machine's
// local time: without --tz the read stops and says what to give; with it the
// time is read in that zone, across a DST change.
func TestOldExportTimes(t *testing.T) {
	t.Parallel()
	old := func(id int, date string) string {
		return `{"id": ` + itoa(id) + `, "type": "message", "date": "` + date + `", "from": "Anna Client", "from_id": 42, "text": "hi ` + itoa(id) + `"}`
	}
	dir := export(t, oneChat(old(1, "2021-03-27T12:00:00"), old(2, "2021-03-28T12:00:00")))
	res := read(t, sources.Spec{Path: dir}, 0)
	require.Empty(t, res.records)
	var re *sources.ReadError
	require.ErrorAs(t, res.fatal, &re)
	require.Contains(t, re.Error(), "message 1 of chat \"Anna Client\" has no date_unixtime")
	require.Contains(t, re.Error(), "give --tz ZONE")
	require.Contains(t, re.Error(), filepath.Join(dir, ResultFile))

	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	res = read(t, sources.Spec{Path: dir, Location: berlin}, 0)
	require.NoError(t, res.fatal)
	require.Len(t, res.records, 2)
	require.EqualValues(t, time.Date(2021, 3, 27, 11, 0, 0, 0, time.UTC).Unix(), res.records[0].Payload.Timestamp, "CET: UTC+1")
	require.EqualValues(t, time.Date(2021, 3, 28, 10, 0, 0, 0, time.UTC).Unix(), res.records[1].Payload.Timestamp, "CEST: UTC+2")
	require.Equal(t, "tg-user42", res.records[0].Payload.Sender.ID, "a numeric from_id (old exports) is a user id")
	require.Nil(t, res.records[0].Payload.Receiver)
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestSkippedChats: group chats, channels, bot chats and saved messages are
// skipped whole, each counted, with their messages.
func TestSkippedChats(t *testing.T) {
	t.Parallel()
	chat := func(typ string, id int, n int) string {
		var msgs []string
		for i := 1; i <= n; i++ {
			msgs = append(msgs, tgMsg(i, 1710000000+int64(i), 'a', text("m")))
		}
		return `{"name": "x", "type": "` + typ + `", "id": ` + itoa(id) + `, "messages": [` + strings.Join(msgs, ",") + `]}`
	}
	account := `{"about": "x", "chats": {"about": "y", "list": [` + strings.Join([]string{
		chat("private_group", 1, 2), chat("private_supergroup", 2, 1), chat("public_supergroup", 3, 1),
		chat("private_channel", 4, 3), chat("public_channel", 5, 1), chat("bot_chat", 6, 2),
		chat("saved_messages", 7, 1), chat("replies", 8, 1), chat("personal_chat", 9, 2),
	}, ",") + `]}}`
	res := read(t, sources.Spec{Path: export(t, account), Users: botUsers()}, 0)
	require.Equal(t, []string{"tg-9-1", "tg-9-2"}, res.msgids())
	require.Equal(t, map[string]int64{
		sources.SkipGroupChat: 3, sources.SkipChannel: 2, sources.SkipBotChat: 1, sources.SkipSavedMessages: 1, sources.SkipOtherChat: 1,
		sources.SkipChatMessage: 2 + 1 + 1 + 3 + 1 + 2 + 1 + 1,
	}, res.stats.Skipped)
	require.Equal(t, "tg-user9", res.records[0].Payload.Receiver.ID, "the message is by user42, not the chat's peer (user9): the company's")
}

// TestMediaFiles: a photo or file is the file beside result.json; a
// placeholder, a path out of the folder (.., absolute, a link out of it) or
// a file not there is media without a file; Kommo's type follows media_type.
func TestMediaFiles(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret.txt")
	require.NoError(t, os.WriteFile(outside, []byte("secret"), 0o600))
	dir := export(t, oneChat(
		tgMsg(1, 1710000001, 'a', `"photo": "photos/photo_1@14-03-2024_18-02-11.jpg", "photo_file_size": 999, "text": "cap"`),
		tgMsg(2, 1710000002, 'a', `"file": "video_files/clip.mp4", "media_type": "video_file", "duration_seconds": 12, "text": ""`),
		tgMsg(3, 1710000003, 'a', `"file": "round_video_messages/r.mp4", "media_type": "video_message", "text": ""`),
		tgMsg(4, 1710000004, 'a', `"file": "animations/a.mp4", "media_type": "animation", "text": ""`),
		tgMsg(5, 1710000005, 'a', `"file": "files/song.mp3", "media_type": "audio_file", "performer": "X", "text": ""`),
		tgMsg(6, 1710000006, 'a', `"file": "(File unavailable, please try again later)", "file_name": "contract.docx", "file_size": 5000, "text": ""`),
		tgMsg(7, 1710000007, 'a', `"file": "../secret.txt", "text": ""`),
		tgMsg(8, 1710000008, 'a', `"file": "`+filepath.ToSlash(outside)+`", "text": ""`),
		tgMsg(9, 1710000009, 'a', `"file": "files/link.txt", "text": ""`),
		tgMsg(10, 1710000010, 'a', `"file": "files/gone.pdf", "text": ""`),
		tgMsg(11, 1710000011, 'a', `"photo": "(File not included. Change data exporting settings to download.)", "text": ""`),
	), "photos/photo_1@14-03-2024_18-02-11.jpg", "video_files/clip.mp4", "round_video_messages/r.mp4", "animations/a.mp4", "files/song.mp3")
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "files", "link.txt")))
	res := read(t, sources.Spec{Path: dir, MediaHosted: true, MediaMissing: sources.MediaMissingText}, 0)
	require.Empty(t, res.errTexts())
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	got := map[string]wire.Message{}
	for _, rec := range res.records {
		m := *rec.Payload.Message
		m.Media = strings.TrimPrefix(m.Media, "file://"+filepath.ToSlash(abs)+"/")
		got[rec.Payload.MsgID] = m
	}
	size := func(f string) int64 { return int64(len("content of " + f)) }
	require.Equal(t, map[string]wire.Message{
		"tg-42-1":  {Type: wire.TypePicture, Text: "cap", Media: "photos/photo_1@14-03-2024_18-02-11.jpg", FileName: "photo_1@14-03-2024_18-02-11.jpg", FileSize: size("photos/photo_1@14-03-2024_18-02-11.jpg")},
		"tg-42-2":  {Type: wire.TypeVideo, Media: "video_files/clip.mp4", FileName: "clip.mp4", FileSize: size("video_files/clip.mp4"), MediaDuration: 12},
		"tg-42-3":  {Type: wire.TypeVideo, Media: "round_video_messages/r.mp4", FileName: "r.mp4", FileSize: size("round_video_messages/r.mp4")},
		"tg-42-4":  {Type: wire.TypeVideo, Media: "animations/a.mp4", FileName: "a.mp4", FileSize: size("animations/a.mp4")},
		"tg-42-5":  {Type: wire.TypeAudio, Media: "files/song.mp3", FileName: "song.mp3", FileSize: size("files/song.mp3")},
		"tg-42-6":  {Type: wire.TypeText, Text: "[file: contract.docx]"},
		"tg-42-7":  {Type: wire.TypeText, Text: "[file: secret.txt]"},
		"tg-42-8":  {Type: wire.TypeText, Text: "[file: secret.txt]"},
		"tg-42-9":  {Type: wire.TypeText, Text: "[file: link.txt]"},
		"tg-42-10": {Type: wire.TypeText, Text: "[file: gone.pdf]"},
		"tg-42-11": {Type: wire.TypeText, Text: "[picture]"},
	}, got)
	require.Equal(t, map[string]int64{sources.SkipMediaWithoutFile: 6}, res.stats.Skipped)

	// Without --media-missing text, media without a file is rejected, and
	// named; the other records go on.
	res = read(t, sources.Spec{Path: dir, MediaHosted: true}, 0)
	require.Len(t, res.errs, 6)
	require.Len(t, res.records, 5)
	require.Equal(t, "message.media", res.errs[0].Field)
}

// TestReplies: a reply names the quoted message by its msgid; a reply to a
// message of another chat is dropped (Kommo quotes within the chat only).
func TestReplies(t *testing.T) {
	t.Parallel()
	dir := export(t, oneChat(
		tgMsg(1, 1710000001, 'a', text("q")),
		tgMsg(2, 1710000002, 'o', `"reply_to_message_id": 1, `+text("a")),
		tgMsg(3, 1710000003, 'a', `"reply_to_message_id": 77, "reply_to_peer_id": "channel5", `+text("b")),
		tgMsg(4, 1710000004, 'a', `"reply_to_message_id": 4, `+text("self")),
	))
	res := read(t, sources.Spec{Path: dir, Users: botUsers()}, 0)
	require.Equal(t, &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: "tg-42-1"}}, res.byID(t, "tg-42-2").ReplyTo)
	require.Nil(t, res.byID(t, "tg-42-3").ReplyTo)
	require.Nil(t, res.byID(t, "tg-42-4").ReplyTo)
}

func botUsers() *sources.UserMap {
	u := sources.NewUserMap()
	u.SetBotID("BOT")
	return u
}

// TestDirection: in a one-chat export the peer is the client and the other
// author the company; the agent is mapped by from_id or by name; without
// from_id, the chat's name is the client and a --self name the company.
func TestDirection(t *testing.T) {
	t.Parallel()
	users := sources.NewUserMap()
	require.NoError(t, users.AddAgent("user7", "amojo-by-id"))
	require.NoError(t, users.AddAgent("Petr Agent", "amojo-by-name"))
	dir := export(t, oneChat(
		tgMsg(1, 1710000001, 'a', text("client")),
		tgMsg(2, 1710000002, 'o', text("agent by id")),
		`{"id": 3, "type": "message", "date_unixtime": "1710000003", "from": "Petr Agent", "from_id": "user8", "text": "agent by name"}`,
		`{"id": 4, "type": "message", "date_unixtime": "1710000004", "from": "Anna Client", "text": "no from_id, the peer"}`,
		`{"id": 5, "type": "message", "date_unixtime": "1710000005", "from": "ACME  support", "text": "no from_id, --self"}`,
		`{"id": 6, "type": "message", "date_unixtime": "1710000006", "from": "Stranger", "text": "no from_id, nobody"}`,
	))
	users.SetBotID("BOT")
	res := read(t, sources.Spec{Path: dir, Users: users, Self: []string{"Acme Support"}}, 0)
	require.Nil(t, res.byID(t, "tg-42-1").Receiver)
	require.Equal(t, "amojo-by-id", res.byID(t, "tg-42-2").Sender.RefID)
	require.Equal(t, &wire.Participant{ID: "Petr Agent", RefID: "amojo-by-name", Name: "Petr Agent"}, res.byID(t, "tg-42-3").Sender)
	require.Nil(t, res.byID(t, "tg-42-4").Receiver)
	require.Equal(t, "tg-user42", res.byID(t, "tg-42-4").Sender.ID)
	require.NotNil(t, res.byID(t, "tg-42-5").Receiver)
	require.Equal(t, "BOT", res.byID(t, "tg-42-5").Sender.RefID)
	require.Len(t, res.errs, 1)
	require.Equal(t, "from_id", res.errs[0].Field)
	require.Contains(t, res.errs[0].Error(), `the author "Stranger" is neither the chat's peer "Anna Client" nor a --self name`)
}

// TestOrder: messages out of id order within a chat are put back in order
// (ties in one second go by id); lines only grow, as staging's checkpoint
// needs; a message displaced further than the window stays where it is.
func TestOrder(t *testing.T) {
	t.Parallel()
	var msgs []string
	ids := []int{1, 2, 5, 3, 4, 6, 8, 7}
	for _, id := range ids {
		msgs = append(msgs, tgMsg(id, 1710000000, 'a', text("same second")))
	}
	res := read(t, sources.Spec{Path: export(t, oneChat(msgs...))}, 0)
	require.Equal(t, []string{"tg-42-1", "tg-42-2", "tg-42-3", "tg-42-4", "tg-42-5", "tg-42-6", "tg-42-7", "tg-42-8"}, res.msgids())
	lines := []int64{}
	for _, rec := range res.records {
		lines = append(lines, rec.Line)
	}
	require.Equal(t, []int64{6, 7, 9, 10, 11, 11 + 1, 13, 14}, lines, "tgMsg writes one a line from line 6; id 5 (line 8) waits for 3 and 4, then takes the next line")

	// Displaced by more than the window: the late message follows the window.
	msgs = []string{tgMsg(1, 1710000000, 'a', text("first"))}
	for i := 3; i < 3+windowItems+10; i++ {
		msgs = append(msgs, tgMsg(i, 1710000000+int64(i), 'a', text("on")))
	}
	msgs = append(msgs, tgMsg(2, 1710000002, 'a', text("late")))
	res = read(t, sources.Spec{Path: export(t, oneChat(msgs...))}, 0)
	require.Len(t, res.records, windowItems+12)
	require.Equal(t, "tg-42-2", res.records[11].Payload.MsgID, "after the ten that left the window before it came")
}

// TestSortedKeys: a file re-serialized with sorted keys (jq -S) has the
// messages before a chat's type and id, and the chats before the contacts;
// it reads the same.
func TestSortedKeys(t *testing.T) {
	t.Parallel()
	for _, path := range []string{chatSample, accountSample} {
		want := read(t, sources.Spec{Path: path, Users: botUsers(), MediaMissing: sources.MediaMissingText}, 0)
		raw, err := os.ReadFile(filepath.Join(path, ResultFile))
		require.NoError(t, err)
		fixed, _, _ := repair(nil, raw)
		var v any
		require.NoError(t, json.Unmarshal(fixed, &v))
		sorted, err := json.MarshalIndent(v, "", "  ") // maps marshal with sorted keys
		require.NoError(t, err)
		require.Less(t, strings.Index(string(sorted), `"messages"`), strings.Index(string(sorted), `"type"`))
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, ResultFile), sorted, 0o644))
		got := read(t, sources.Spec{Path: dir, Users: botUsers(), MediaMissing: sources.MediaMissingText}, 0)
		require.Equal(t, payloads(want), payloads(got), path)
		require.Equal(t, want.stats.Skipped[sources.SkipGroupChat], got.stats.Skipped[sources.SkipGroupChat])
	}
}

// payloads are the records' payloads (a copy of an export without its
// media files gives the same: media go out as text naming the file anyway).
func payloads(r result) []wire.Payload {
	out := []wire.Payload{}
	for _, rec := range r.records {
		out = append(out, rec.Payload)
	}
	return out
}
