package meta

import (
	"archive/zip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// oneThread writes a one-to-one thread of two messages at rel (a thread
// folder) under root, with a photo beside it whose uri is uriPrefix and the
// thread's path inside messages/.
func oneThread(t *testing.T, root, rel, uriPrefix string) {
	t.Helper()
	inside := rel[strings.LastIndex(rel, "messages/")+len("messages/"):]
	writeJSON(t, root, rel+"/message_1.json", dyi("Anna Müller", []string{"Anna Müller", "Me Owner"},
		m("Anna Müller", 0, "ahoj"),
		m("Anna Müller", 1, "", "photos", []any{map[string]any{"uri": uriPrefix + inside + "/photos/p.jpg"}}),
	))
	writeFile(t, root, rel+"/photos/p.jpg", []byte("jpeg"))
}

// Every layout Meta has used is found, and its media resolved from where
// that layout's uris start.
func TestLayouts(t *testing.T) {
	for _, tc := range []struct {
		name, kind, dir, uri string
		path                 func(root string) string // what the user gives; nil: root
	}{
		{"2025", KindMessenger, "your_facebook_activity/messages/inbox/anna_1234567", "messages/", nil},
		{"2024", KindMessenger, "your_activity_across_facebook/messages/inbox/anna_1234567", "messages/", nil},
		{"before 2024", KindMessenger, "messages/inbox/anna_1234567", "messages/", nil},
		{"the messages folder itself", KindMessenger, "messages/inbox/anna_1234567", "messages/", func(r string) string { return filepath.Join(r, "messages") }},
		{"unzipped into a folder of its own", KindMessenger, "facebook-me-2025-01-02/your_facebook_activity/messages/inbox/anna_1234567", "messages/", nil},
		{"instagram", KindInstagram, "your_instagram_activity/messages/inbox/anna_1234567", "your_instagram_activity/messages/", nil},
		{"instagram before 2024", KindInstagram, "messages/inbox/anna_1234567", "messages/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			oneThread(t, root, tc.dir, tc.uri)
			p := root
			if tc.path != nil {
				p = tc.path(root)
			}
			res := readAll(t, sources.Spec{Kind: tc.kind, Path: p, Self: []string{"Me Owner"}})
			require.Empty(t, res.errs)
			prefix := "fb-"
			if tc.kind == KindInstagram {
				prefix = "ig-"
			}
			require.Equal(t, []string{
				prefix + `1234567 in  Anna Müller: "ahoj"`,
				prefix + `1234567 in  Anna Müller: "[picture: p.jpg]"`,
			}, briefs(res))
			dec := decodeAll(t, sources.Spec{Kind: tc.kind, Path: p, Self: []string{"Me Owner"}})
			require.Equal(t, chatexportFileURL(filepath.Join(root, filepath.FromSlash(tc.dir), "photos", "p.jpg")), dec[1].p.Message.Media)
		})
	}
}

func TestWrongKindNamesTheRightOne(t *testing.T) {
	root := t.TempDir()
	oneThread(t, root, "your_instagram_activity/messages/inbox/anna_1234567", "")
	_, _, err := open(t.Context(), sources.Spec{Kind: KindMessenger, Path: root})
	require.ErrorContains(t, err, "this is an export of Instagram (your_instagram_activity/messages): read it with --source instagram:PATH")

	root = t.TempDir()
	oneThread(t, root, "your_facebook_activity/messages/inbox/anna_1234567", "")
	_, _, err = open(t.Context(), sources.Spec{Kind: KindInstagram, Path: root})
	require.ErrorContains(t, err, "read it with --source messenger:PATH")
}

func TestHTMLExportAsksForJSON(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "your_facebook_activity/messages/inbox/anna_1234567/message_1.html", []byte("<html></html>"))
	_, _, err := open(t.Context(), sources.Spec{Kind: KindMessenger, Path: root})
	require.ErrorContains(t, err, "the export is in HTML format (1 threads of message_N.html): download it again with Format JSON")
}

func TestNoMessagesFound(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "your_facebook_activity/posts/your_posts_1.json", []byte("[]"))
	_, _, err := open(t.Context(), sources.Spec{Kind: KindMessenger, Path: root})
	require.ErrorContains(t, err, "no messages found: looked for your_facebook_activity/messages/, your_activity_across_facebook/messages/, messages/")

	_, _, err = open(t.Context(), sources.Spec{Kind: KindMessenger, Path: filepath.Join(root, "nope")})
	require.ErrorContains(t, err, "no such file or directory")

	writeFile(t, root, "notes.txt", []byte("hello"))
	_, _, err = open(t.Context(), sources.Spec{Kind: KindMessenger, Path: filepath.Join(root, "notes.txt")})
	require.ErrorContains(t, err, "is neither a folder nor a .zip")
}

// zipDir zips a folder as Meta's download is zipped.
func zipDir(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "facebook-me-2025.zip")
	f, err := os.Create(out)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	require.NoError(t, zw.AddFS(os.DirFS(dir)))
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return out
}

// The .zip reads as the folder does, media aside: a file in a zip has no
// path to send, so it is media without a file that says to unzip.
func TestZipReadsLikeTheFolder(t *testing.T) {
	spec := sampleSpec(t, KindMessenger, "messenger/2025")
	folder := readAll(t, spec)
	spec.Path = zipDir(t, samples+"messenger/2025")
	spec.Users = sampleUsers(t)
	zipped := readAll(t, spec)
	require.Len(t, zipped.recs, len(folder.recs))
	for i := range folder.recs {
		f, z := folder.recs[i].Payload, zipped.recs[i].Payload
		require.Equal(t, f.MsgID, z.MsgID)
		require.Equal(t, f.ConversationID, z.ConversationID)
		require.Equal(t, brief(&f), brief(&z))
	}
	// In the zip, the decoder finds the files but has no path to send.
	var files int
	for _, r := range decodeAll(t, spec) {
		if msg := r.p.Message; r.err == nil && msg.Type != wire.TypeText && !strings.Contains(msg.FileName, "missing") {
			require.Empty(t, msg.Media, "no local file to send from a zip")
			require.NotZero(t, msg.FileSize, "the size is read from the zip")
			files++
		}
	}
	require.Equal(t, 6, files)
}

func TestResumable(t *testing.T) {
	spec := sampleSpec(t, KindMessenger, "messenger/pre2024")
	r, err := Open(t.Context(), spec)
	require.NoError(t, err)
	require.False(t, r.Resumable(), "a folder can change under its own modification time: read again from the start")
	require.NoError(t, r.Close())

	spec.Path = zipDir(t, samples+"messenger/pre2024")
	r, err = Open(t.Context(), spec)
	require.NoError(t, err)
	require.True(t, r.Resumable(), "a zip's size and time say it is the same export")
	require.NoError(t, r.Close())
}

// Symbolic links inside the export do not lead out of it.
func TestSymlinkOutOfTheExport(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFile(t, outside, "secret.jpg", []byte("secret"))
	oneThread(t, root, "messages/inbox/anna_1234567", "messages/")
	p := filepath.Join(root, "messages/inbox/anna_1234567/photos/p.jpg")
	require.NoError(t, os.Remove(p))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.jpg"), p))
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, Self: []string{"Me Owner"}, MediaMissing: sources.MediaMissingText})
	require.Equal(t, `fb-1234567 in  Anna Müller: "[picture: p.jpg]"`, brief(&res.recs[1].Payload))
	_, err := fs.Stat(os.DirFS(root), "messages/inbox/anna_1234567/photos/p.jpg")
	require.NoError(t, err, "the link itself resolves outside the export's reader")
}
