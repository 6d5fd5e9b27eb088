package telegram

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	chatSample    = "../../testdata/telegram/ChatExport_2024-03-14"
	accountSample = "../../testdata/telegram/DataExport_2024-04-01"
)

// golden compares the records' payloads, one JSON line each, with a file
// under testdata/ (rewritten with -update).
func golden(t *testing.T, name string, res result) {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, rec := range res.records {
		require.NoError(t, enc.Encode(rec.Payload))
	}
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), b.String(), "run go test -update to accept the change")
}

func sampleUsers(t *testing.T) *sources.UserMap {
	t.Helper()
	users := sources.NewUserMap()
	require.NoError(t, users.AddAgent("Olga Support", "amojo-olga"))
	return users
}

// TestOneChatSample reads the one-chat sample (every pitfall of the
// reference in one messy chat) and checks it against its golden payloads,
// then the points that matter one by one.
func TestOneChatSample(t *testing.T) {
	t.Parallel()
	res := read(t, sources.Spec{Path: chatSample, Users: sampleUsers(t), MediaMissing: sources.MediaMissingText}, 0)
	require.Empty(t, res.errTexts())
	golden(t, "want-chat.jsonl", res)
	require.Equal(t, []string{
		"tg-123456789-4501", "tg-123456789-4502", "tg-123456789-4503", "tg-123456789-4504", "tg-123456789-4505",
		"tg-123456789-4506", "tg-123456789-4507", "tg-123456789-4508", "tg-123456789-4510", "tg-123456789-4511",
		"tg-123456789-4512", "tg-123456789-4513", "tg-123456789-4514", "tg-123456789-4517", "tg-123456789-4518",
		"tg-123456789-4519", "tg-123456789-4520", "tg-123456789-4521", "tg-123456789-4523",
	}, res.msgids(), "in id order; service, unsupported, poll and empty messages left out")
	require.EqualValues(t, 1, res.stats.Conversations)
	require.Equal(t, map[string]int64{
		sources.SkipServiceMessage:   2, // a call, a pin
		sources.SkipUnsupported:      3, // type unsupported, a poll, an empty message
		sources.SkipMediaWithoutFile: 4, // a voice left out, a sticker not on disk, a photo too big, a path out of the folder
		sources.SkipMediaNotHosted:   3, // the photo, the invoice, the voice message on disk
	}, res.stats.Skipped)

	// Direction: the peer (user123456789) is the client; the other author
	// is the company, mapped to its Kommo user by name.
	in := res.byID(t, "tg-123456789-4501")
	require.Nil(t, in.Receiver)
	require.Equal(t, &wire.Participant{ID: "tg-user123456789", Name: "Ivan Petrov"}, in.Sender)
	out := res.byID(t, "tg-123456789-4502")
	require.Equal(t, &wire.Participant{ID: "Olga Support", RefID: "amojo-olga", Name: "Olga Support"}, out.Sender)
	require.Equal(t, "tg-user123456789", out.Receiver.ID)
	require.Equal(t, "Hi Ivan, it left today, tracking: https://track.example.com/1842", out.Message.Text, "text_entities joined")
	require.EqualValues(t, 1710428531, out.Timestamp, "date_unixtime, not the local date")

	require.Equal(t, "Copied from my notes:\v order path C:\\x41\\box", res.byID(t, "tg-123456789-4508").Message.Text,
		`\x0B is a control byte; the escaped backslash before x41 stays literal`)
	require.Equal(t, "Great, thanks 😁", res.byID(t, "tg-123456789-4513").Message.Text, "4.1.1's unquoted document_id is read")
	require.Equal(t, &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: "tg-123456789-4502"}}, res.byID(t, "tg-123456789-4505").ReplyTo)
	require.Equal(t, "[forwarded from Acme News] Spring sale starts on Monday", res.byID(t, "tg-123456789-4506").Message.Text)
	require.EqualValues(t, 1710429100, res.byID(t, "tg-123456789-4507").Timestamp, "an edited message keeps the time it was sent")
	require.Equal(t, &wire.Contact{Name: "Acme Warehouse", Phone: "+7 495 000 11 22"}, res.byID(t, "tg-123456789-4510").Message.Contact)
	require.Equal(t, &wire.Location{Lat: 55.751244, Lon: 37.618423}, res.byID(t, "tg-123456789-4511").Message.Location)
	require.Equal(t, "[picture: photo_1@14-03-2024_18-06-40.jpg] The box came damaged", res.byID(t, "tg-123456789-4503").Message.Text)
	require.Equal(t, "[voice]", res.byID(t, "tg-123456789-4504").Message.Text, "a placeholder: no file")
	require.Equal(t, "[file: outside.txt] sneaky", res.byID(t, "tg-123456789-4520").Message.Text, "../outside.txt is there, but outside the export")
}

// TestOneChatSampleMediaHosted: with hosting, the files on disk travel as
// file: URLs inside the export folder, with the name, the size from the file
// and the Kommo type; the rest as without.
func TestOneChatSampleMediaHosted(t *testing.T) {
	t.Parallel()
	res := read(t, sources.Spec{Path: chatSample, Users: sampleUsers(t), MediaMissing: sources.MediaMissingText, MediaHosted: true}, 0)
	dir, err := filepath.Abs(chatSample)
	require.NoError(t, err)
	photo := res.byID(t, "tg-123456789-4503").Message
	fi, err := os.Stat(filepath.Join(dir, "photos", "photo_1@14-03-2024_18-06-40.jpg"))
	require.NoError(t, err)
	require.Equal(t, &wire.Message{Type: wire.TypePicture, Text: "The box came damaged", Media: "file://" + filepath.ToSlash(dir) + "/photos/photo_1@14-03-2024_18-06-40.jpg",
		FileName: "photo_1@14-03-2024_18-06-40.jpg", FileSize: fi.Size()}, photo, "the size is the file's, not photo_file_size")
	invoice := res.byID(t, "tg-123456789-4514").Message
	require.Equal(t, wire.TypeFile, invoice.Type)
	require.Equal(t, "invoice_1842.pdf", invoice.FileName)
	voice := res.byID(t, "tg-123456789-4521").Message
	require.Equal(t, wire.TypeVoice, voice.Type)
	require.EqualValues(t, 3, voice.MediaDuration)
	require.True(t, strings.HasPrefix(voice.Media, "file://"))
	require.Equal(t, map[string]int64{sources.SkipServiceMessage: 2, sources.SkipUnsupported: 3, sources.SkipMediaWithoutFile: 4}, res.stats.Skipped)
}

// TestAccountSample reads the whole-account sample: personal chats only,
// phones from contacts.list, everything else skipped and counted.
func TestAccountSample(t *testing.T) {
	t.Parallel()
	res := read(t, sources.Spec{Path: filepath.Join(accountSample, ResultFile), Users: sampleUsers(t), MediaMissing: sources.MediaMissingText}, 0)
	require.Empty(t, res.errTexts())
	golden(t, "want-account.jsonl", res)
	require.EqualValues(t, 3, res.stats.Conversations, "Ivan, Maria and a deleted account")
	require.Equal(t, map[string]int64{
		sources.SkipGroupChat: 2, sources.SkipChannel: 1, sources.SkipBotChat: 1, sources.SkipSavedMessages: 1,
		sources.SkipChatMessage:    3 + 2 + 2 + 1 + 1,
		sources.SkipServiceMessage: 3, sources.SkipUnsupported: 3, sources.SkipMediaWithoutFile: 4, sources.SkipMediaNotHosted: 3,
	}, res.stats.Skipped)
	ivan := res.byID(t, "tg-123456789-4532")
	require.Equal(t, &wire.Participant{ID: "tg-user123456789", Name: "Ivan Petrov", Profile: &wire.Profile{Phone: "+7 999 123 45 67"}}, ivan.Sender)
	maria := res.byID(t, "tg-987654321-21")
	require.Equal(t, "+34 600 111 222", maria.Receiver.Profile.Phone)
	require.Equal(t, "amojo-olga", maria.Sender.RefID)
	require.Equal(t, "[forwarded from a hidden account] (forwarded from someone who hides their name)", res.byID(t, "tg-987654321-25").Message.Text)
	deleted := res.byID(t, "tg-111-7")
	require.Equal(t, &wire.Participant{ID: "tg-user111", Name: "Telegram user 111"}, deleted.Sender, "a deleted account has no name")

	// The same chat in both exports has the same ids: a later export is a re-sync.
	one := read(t, sources.Spec{Path: chatSample, Users: sampleUsers(t), MediaMissing: sources.MediaMissingText}, 0)
	for _, id := range one.msgids() {
		res.byID(t, id)
	}
}
