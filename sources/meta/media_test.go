package meta

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// Each media list's Kommo type, where its file is looked for, and what a
// uri that leads out of the export does: it rejects its record only.
func TestMedia(t *testing.T) {
	root := t.TempDir()
	dir := "your_facebook_activity/messages/inbox/anna_1234567/"
	u := "messages/inbox/anna_1234567/"
	for _, f := range []string{"p.jpg", "v.mp4", "a.mp4", "f.pdf", "g.gif", "g.mp4"} {
		writeFile(t, root, dir+"x/"+f, []byte("data"))
	}
	writeFile(t, root, dir+"x/empty.jpg", nil)
	writeFile(t, root, "your_facebook_activity/messages/stickers_used/s.png", []byte("png"))
	list := func(uris ...string) []any {
		out := make([]any, len(uris))
		for i, x := range uris {
			out[i] = map[string]any{"uri": x, "creation_timestamp": 1700000000}
		}
		return out
	}
	writeJSON(t, root, dir+"message_1.json", dyi("Anna", []string{"Anna", "Me"},
		m("Anna", 1, "caption", "photos", list(u+"x/p.jpg", u+"x/missing.jpg")),
		m("Anna", 2, "", "videos", list(u+"x/v.mp4")),
		m("Anna", 3, "", "audio_files", list(u+"x/a.mp4")),
		m("Anna", 4, "", "files", list(u+"x/f.pdf")),
		m("Anna", 5, "", "gifs", list(u+"x/g.gif", u+"x/g.mp4")),
		m("Anna", 6, "", "sticker", map[string]any{"uri": "messages/stickers_used/s.png"}),
		m("Anna", 7, "abs", "photos", list("/etc/passwd")),
		m("Anna", 8, "win", "photos", list(`C:\Users\me\p.jpg`)),
		m("Anna", 9, "up", "files", list(u+"../../../../../etc/passwd")),
		m("Anna", 10, "web", "photos", list("https://scontent.xx.fbcdn.net/v/p.jpg?x=1")),
		m("Anna", 11, "empty", "photos", list(u+"x/empty.jpg")),
		m("Anna", 12, "no uri", "photos", list("")),
		m("Anna", 13, "backslashes", "photos", list(`messages\inbox\anna_1234567\x\p.jpg`)),
	))
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, MediaMissing: sources.MediaMissingText})
	got := briefs(res)
	require.Equal(t, []string{
		`fb-1234567 in  Anna: "[picture: p.jpg] caption"`,
		`fb-1234567 in  Anna: "[picture: missing.jpg]"`,
		`fb-1234567 in  Anna: "[video: v.mp4]"`,
		`fb-1234567 in  Anna: "[voice: a.mp4]"`,
		`fb-1234567 in  Anna: "[file: f.pdf]"`,
		`fb-1234567 in  Anna: "[picture: g.gif]"`,
		`fb-1234567 in  Anna: "[video: g.mp4]"`,
		`fb-1234567 in  Anna: "[sticker: s.png]"`,
		`fb-1234567 in  Anna: "[picture: p.jpg] web"`,
		`fb-1234567 in  Anna: "[picture: empty.jpg] empty"`,
		`fb-1234567 in  Anna: "[picture] no uri"`,
		`fb-1234567 in  Anna: "[picture: p.jpg] backslashes"`,
	}, got)
	require.Len(t, res.errs, 3)
	require.Equal(t, "photos[0].uri", res.errs[0].Field)
	require.ErrorContains(t, res.errs[0], "message_1.json line ")
	require.ErrorContains(t, res.errs[0], "an absolute path: media must be inside the export")
	require.ErrorContains(t, res.errs[1], "an absolute path")
	require.Equal(t, "files[0].uri", res.errs[2].Field)
	require.ErrorContains(t, res.errs[2], "a path leading out of the export (..)")

	// The second file of a message is a record of its own, without the text.
	require.Equal(t, res.recs[0].Payload.MsgID+"-2", res.recs[1].Payload.MsgID)
	dec := decodeAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.EqualValues(t, 4, dec[0].p.Message.FileSize)
	require.Equal(t, chatexportFileURL(filepath.Join(root, dir, "x", "p.jpg")), dec[0].p.Message.Media)
}

// Kommo types of the E2EE export's single media list, by extension.
func TestE2EEMediaTypes(t *testing.T) {
	for uri, want := range map[string]string{
		"./media/a.jpeg": wire.TypePicture, "./media/a.PNG": wire.TypePicture, "./media/a.gif": wire.TypePicture,
		"./media/a.mp4": wire.TypeVideo, "./media/a.m4a": wire.TypeVoice, "./media/a.opus": wire.TypeVoice,
		"./media/a.pdf": wire.TypeFile, "./media/noext": wire.TypeFile,
	} {
		require.Equal(t, want, mediaType(listE2EE, uri), uri)
	}
}
