package sources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

// mediaLess are messages Kommo could only show as broken files, with what
// --media-missing text makes of them.
var mediaLess = []struct {
	msg  wire.Message
	text string
}{
	{wire.Message{Type: "picture", Text: "look at this", FileName: "IMG_2041.jpg", FileSize: 482113}, "[picture: IMG_2041.jpg] look at this"},
	{wire.Message{Type: "video", FileName: "unboxing.mp4", FileSize: 10, MediaDuration: 63}, "[video: unboxing.mp4]"},
	{wire.Message{Type: "file", FileName: "чек 4411.pdf", FileSize: 91234}, "[file: чек 4411.pdf]"},
	{wire.Message{Type: "voice", MediaDuration: 14}, "[voice]"},
	{wire.Message{Type: "audio", Text: " ", Media: " "}, "[audio]"},
	{wire.Message{Type: "sticker"}, "[sticker]"},
	{wire.Message{Type: "picture", Text: "caption only"}, "[picture] caption only"},
}

// TestMediaMissing: 10,000 records with media-less media messages spread
// through them: rejected by default with a reason that says what to do, or
// sent as text with --media-missing text; every other record is untouched.
func TestMediaMissing(t *testing.T) {
	t.Parallel()
	const n = 10000
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	spoiled := map[string]string{} // msgid -> text it becomes
	for i := 0; i < n; i++ {
		p := benchPayload(i)
		if i%101 == 7 {
			c := mediaLess[len(spoiled)%len(mediaLess)]
			m := c.msg
			p.Message = &m
			spoiled[p.MsgID] = c.text
		}
		require.NoError(t, enc.Encode(p))
	}
	path := writeFile(t, "media.jsonl", in.String())

	t.Run("reject by default", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, Spec{Kind: KindJSONL, Path: path})
		require.Len(t, res.errs, len(spoiled))
		require.Len(t, res.records, n-len(spoiled))
		for _, e := range res.errs {
			require.Equal(t, "message.media", e.Field)
			require.ErrorIs(t, e, ErrRequired)
			require.Contains(t, e.Error(), "give the file's URL, or --media-missing text to send its name as a text message")
		}
		require.Contains(t, res.errs[0].Error(), "message.media: required for type picture: ")
		for _, r := range res.records {
			require.NotContains(t, spoiled, r.Payload.MsgID)
		}
	})
	t.Run("as text", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, Spec{Kind: KindJSONL, Path: path, MediaMissing: MediaMissingText})
		require.Empty(t, res.errs)
		require.Len(t, res.records, n)
		converted := 0
		for i, r := range res.records {
			want, ok := spoiled[r.Payload.MsgID]
			if !ok {
				require.Equal(t, benchPayload(i).Message, r.Payload.Message)
				continue
			}
			converted++
			require.Equal(t, &wire.Message{Type: "text", Text: want}, r.Payload.Message, r.Payload.MsgID)
		}
		require.Equal(t, len(spoiled), converted)
	})
	t.Run("media present is left alone", func(t *testing.T) {
		t.Parallel()
		line := fmt.Sprintf(`{"timestamp":1709284502,"msgid":"a","conversation_id":"c","sender":{"id":"u","name":"A"},"message":%s}`,
			`{"type":"sticker","sticker_id":"CAAC"}`)
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "s.jsonl", line+"\n"), MediaMissing: MediaMissingText})
		require.Empty(t, res.errs)
		require.Equal(t, &wire.Message{Type: "sticker", StickerID: "CAAC"}, res.records[0].Payload.Message)
	})
	t.Run("bad setting", func(t *testing.T) {
		t.Parallel()
		require.ErrorContains(t, Spec{Kind: KindJSONL, Path: path, MediaMissing: "drop"}.Check(), `--media-missing "drop": want reject or text`)
		require.NoError(t, Spec{Kind: KindJSONL, Path: path, MediaMissing: MediaMissingReject}.Check())
	})
}
