package sources

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

// mediaExport lays out an export folder with media beside the source and a
// folder outside it that symlinks lead to:
//
//	base/export/            the source's folder
//	  media/photo.jpg       1,234 bytes
//	  media/voice 1.ogg     700 bytes (a space in the name)
//	  media/empty.jpg       0 bytes
//	  media/big.mp4         2,000 bytes (over the tests' --media-max-size of 1,500)
//	  media/sub/            a folder, not a file
//	  inside.jpg -> media/photo.jpg
//	  out.jpg -> ../outside/secret.jpg
//	  outdir -> ../outside
//	base/outside/secret.jpg 99 bytes
type mediaExport struct {
	dir, outside string
}

func newMediaExport(t *testing.T) mediaExport {
	t.Helper()
	base := t.TempDir()
	e := mediaExport{dir: filepath.Join(base, "export"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{filepath.Join(e.dir, "media", "sub"), e.outside} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for name, size := range map[string]int{"media/photo.jpg": 1234, "media/voice 1.ogg": 700, "media/empty.jpg": 0, "media/big.mp4": 2000} {
		require.NoError(t, os.WriteFile(filepath.Join(e.dir, name), make([]byte, size), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(e.outside, "secret.jpg"), make([]byte, 99), 0o644))
	require.NoError(t, os.Symlink("media/photo.jpg", filepath.Join(e.dir, "inside.jpg")))
	require.NoError(t, os.Symlink("../outside/secret.jpg", filepath.Join(e.dir, "out.jpg")))
	require.NoError(t, os.Symlink("../outside", filepath.Join(e.dir, "outdir")))
	return e
}

func (e mediaExport) url(rel string) string { return fileURL(filepath.Join(e.dir, rel)) }

func mediaLine(id, msg string) string {
	return fmt.Sprintf(`{"timestamp":1709284502,"msgid":%q,"conversation_id":"c1","sender":{"id":"u1","name":"Ann"},"message":%s}`, id, msg)
}

// TestLocalMediaJSONL: each rule of local media paths in a JSONL file, one
// record each, all in one file so that a refused record leaves the others
// alone.
func TestLocalMediaJSONL(t *testing.T) {
	t.Parallel()
	e := newMediaExport(t)
	cases := []struct {
		name, msg string
		want      *wire.Message // nil: rejected
		wantErr   string        // the rejection's reason, in part
		text      *wire.Message // with --media-missing text, when it differs from want
	}{
		{name: "relative path", msg: `{"type":"picture","media":"media/photo.jpg","file_name":"IMG_1.jpg","file_size":5}`,
			want: &wire.Message{Type: "picture", Media: e.url("media/photo.jpg"), FileName: "IMG_1.jpg", FileSize: 1234}},
		{name: "dot slash, no file_name: from the path", msg: `{"type":"picture","media":"./media/photo.jpg"}`,
			want: &wire.Message{Type: "picture", Media: e.url("media/photo.jpg"), FileName: "photo.jpg", FileSize: 1234}},
		{name: "no type: from the extension", msg: `{"media":"media/voice 1.ogg","media_duration":4}`,
			want: &wire.Message{Type: "voice", Media: e.url("media/voice 1.ogg"), FileName: "voice 1.ogg", FileSize: 700, MediaDuration: 4}},
		{name: "absolute file URL inside", msg: fmt.Sprintf(`{"type":"file","media":%q}`, e.url("media/photo.jpg")),
			want: &wire.Message{Type: "file", Media: e.url("media/photo.jpg"), FileName: "photo.jpg", FileSize: 1234}},
		{name: "relative file URL", msg: `{"type":"picture","media":"file:media/photo.jpg"}`,
			want: &wire.Message{Type: "picture", Media: e.url("media/photo.jpg"), FileName: "photo.jpg", FileSize: 1234}},
		{name: "escaped file URL", msg: fmt.Sprintf(`{"type":"voice","media":%q}`, e.url("media/voice 1.ogg")),
			want: &wire.Message{Type: "voice", Media: e.url("media/voice 1.ogg"), FileName: "voice 1.ogg", FileSize: 700}},
		{name: "symlink inside the folder", msg: `{"type":"picture","media":"inside.jpg"}`,
			want: &wire.Message{Type: "picture", Media: e.url("inside.jpg"), FileName: "inside.jpg", FileSize: 1234}},
		{name: "http URL as it is", msg: `{"type":"picture","media":"https://cdn.example.com/a.jpg","file_name":"a.jpg","file_size":10}`,
			want: &wire.Message{Type: "picture", Media: "https://cdn.example.com/a.jpg", FileName: "a.jpg", FileSize: 10}},
		{name: "text with a media field is no media message", msg: `{"type":"text","text":"hi","media":"nowhere.jpg"}`,
			want: &wire.Message{Type: "text", Text: "hi", Media: "nowhere.jpg"}},

		{name: "escape by ..", msg: `{"type":"picture","media":"../outside/secret.jpg"}`, wantErr: "outside the export folder"},
		{name: "escape by .. inside the path", msg: `{"type":"picture","media":"media/../../outside/secret.jpg"}`, wantErr: "outside the export folder"},
		{name: "escape by an absolute path", msg: fmt.Sprintf(`{"type":"picture","media":%q}`, filepath.Join(e.outside, "secret.jpg")), wantErr: "outside the export folder"},
		{name: "escape by a file URL", msg: fmt.Sprintf(`{"type":"picture","media":%q}`, fileURL(filepath.Join(e.outside, "secret.jpg"))), wantErr: "outside the export folder"},
		{name: "escape by a symlinked file", msg: `{"type":"picture","media":"out.jpg"}`, wantErr: "is a symlink to"},
		{name: "escape by a symlinked folder", msg: `{"type":"picture","media":"outdir/secret.jpg"}`, wantErr: "outside the export folder"},
		{name: "another scheme", msg: `{"type":"picture","media":"ftp://files.example.com/a.jpg"}`, wantErr: `a ftp: URL Kommo cannot fetch`},
		{name: "a file URL of another host", msg: `{"type":"picture","media":"file://fileserver/share/a.jpg"}`, wantErr: `names host "fileserver"`},

		{name: "missing", msg: `{"type":"picture","media":"media/nope.jpg","text":"look"}`, wantErr: "nope.jpg does not exist",
			text: &wire.Message{Type: "text", Text: "[picture: nope.jpg] look"}},
		{name: "empty", msg: `{"type":"picture","media":"media/empty.jpg"}`, wantErr: "empty.jpg is empty",
			text: &wire.Message{Type: "text", Text: "[picture: empty.jpg]"}},
		{name: "too large", msg: `{"type":"video","media":"media/big.mp4","file_name":"Big Movie.mp4"}`, wantErr: "holds 2000 bytes, over --media-max-size (1500)",
			text: &wire.Message{Type: "text", Text: "[video: Big Movie.mp4]"}},
		{name: "a folder", msg: `{"media":"media/sub"}`, wantErr: "is not a regular file",
			text: &wire.Message{Type: "text", Text: "[file: sub]"}},
	}
	var lines []string
	for i, c := range cases {
		lines = append(lines, mediaLine(fmt.Sprintf("m%02d", i), c.msg))
	}
	src := filepath.Join(e.dir, "export.jsonl")
	require.NoError(t, os.WriteFile(src, []byte(strings.Join(lines, "\n")+"\n"), 0o644))

	for _, mode := range []string{MediaMissingReject, MediaMissingText} {
		res := readAll(t, Spec{Kind: KindJSONL, Path: src, MediaMaxSize: 1500, MediaMissing: mode, MediaHosted: true})
		got := map[string]*wire.Message{}
		for _, r := range res.records {
			got[r.Payload.MsgID] = r.Payload.Message
		}
		errs := map[int64]*LineError{}
		for _, le := range res.errs {
			errs[le.Line] = le
		}
		var files, placeholders int64
		for i, c := range cases {
			id, line := fmt.Sprintf("m%02d", i), int64(i+1)
			want, wantErr := c.want, c.wantErr
			if mode == MediaMissingText && c.text != nil {
				want, wantErr = c.text, ""
				placeholders++
			}
			if want == nil || wantErr != "" {
				require.Nil(t, got[id], "%s (%s): want rejected", c.name, mode)
				le := errs[line]
				require.NotNil(t, le, "%s (%s): no error", c.name, mode)
				require.Equal(t, "message.media", le.Field, c.name)
				require.Equal(t, src, le.File)
				require.Contains(t, le.Error(), wantErr, c.name)
				continue
			}
			require.Nil(t, errs[line], "%s (%s)", c.name, mode)
			require.Equal(t, want, got[id], "%s (%s)", c.name, mode)
			if strings.HasPrefix(want.Media, "file:") {
				files++
			}
		}
		require.Equal(t, files, res.stats.MediaFiles, mode)
		require.Equal(t, placeholders, res.stats.MediaPlaceholders, mode)
	}
}

// TestLocalMediaCSV: the same rules through CSV columns, the path relative
// to the CSV file's folder, not the working directory.
func TestLocalMediaCSV(t *testing.T) {
	t.Parallel()
	e := newMediaExport(t)
	csv := "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text,message_media,message_file_name,message_file_size\n" +
		"c1,a,1709284502,u1,Ann,picture,,media/photo.jpg,,\n" +
		"c1,b,1709284503,u1,Ann,picture,,../outside/secret.jpg,,\n" +
		"c1,c,1709284504,u1,Ann,picture,,out.jpg,,\n" +
		"c1,d,1709284505,u1,Ann,,,media/voice 1.ogg,,\n" +
		"c1,e,1709284506,u1,Ann,file,,https://files.example.com/r.pdf,r.pdf,77\n" +
		"c1,f,1709284507,u1,Ann,picture,see,media/gone.jpg,,\n"
	src := filepath.Join(e.dir, "export.csv")
	require.NoError(t, os.WriteFile(src, []byte(csv), 0o644))
	res := readAll(t, Spec{Kind: KindCSV, Path: src, MediaHosted: true})
	require.Equal(t, []string{"a", "d", "e"}, res.msgids())
	require.Equal(t, &wire.Message{Type: "picture", Media: e.url("media/photo.jpg"), FileName: "photo.jpg", FileSize: 1234}, res.records[0].Payload.Message)
	require.Equal(t, &wire.Message{Type: "voice", Media: e.url("media/voice 1.ogg"), FileName: "voice 1.ogg", FileSize: 700}, res.records[1].Payload.Message)
	require.Equal(t, "https://files.example.com/r.pdf", res.records[2].Payload.Message.Media)
	require.Equal(t, []errAt{{3, "message.media"}, {4, "message.media"}, {7, "message.media"}}, res.errAts())
	require.ErrorIs(t, res.errs[0], ErrMediaOutside)
	require.ErrorIs(t, res.errs[1], ErrMediaOutside)
	require.ErrorIs(t, res.errs[2], ErrMediaFile)
	require.Contains(t, res.errs[2].Error(), src+":7: message.media: media file unusable: "+filepath.Join(e.dir, "media", "gone.jpg")+" does not exist")

	res = readAll(t, Spec{Kind: KindCSV, Path: src, MediaMissing: MediaMissingText, MediaHosted: true})
	require.Equal(t, []string{"a", "d", "e", "f"}, res.msgids())
	require.Equal(t, &wire.Message{Type: "text", Text: "[picture: gone.jpg] see"}, res.records[3].Payload.Message)
	require.Equal(t, int64(1), res.stats.MediaPlaceholders)
	require.Equal(t, map[string]int64{SkipMediaWithoutFile: 1}, res.stats.Skipped, "counted where the run's summary and status show it, as for the exports")
	require.Len(t, res.errs, 2, "escapes are refused with --media-missing text too")
}

// TestLocalMediaStdin: stdin has no folder, so a local path is refused per
// record, and URLs go through.
func TestLocalMediaStdin(t *testing.T) {
	t.Parallel()
	in := mediaLine("a", `{"type":"picture","media":"photo.jpg"}`) + "\n" +
		mediaLine("b", `{"type":"picture","media":"https://x.example.com/p.png","file_name":"p.png","file_size":3}`) + "\n"
	res := readAll(t, Spec{Kind: KindJSONL, Path: "-", Stdin: strings.NewReader(in), MediaHosted: true})
	require.Equal(t, []string{"b"}, res.msgids())
	require.Len(t, res.errs, 1)
	require.Contains(t, res.errs[0].Error(), "stdin:1: message.media: media file unusable: \"photo.jpg\" is a local file, but stdin has no folder")
}

func TestURLScheme(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		"https://a/b": "https", "HTTP://a": "http", "file:///x": "file", "file:x": "file", "s3://b/k": "s3",
		`C:\media\a.jpg`: "", "media/a.jpg": "", "a:b/c.jpg": "", "./x:y": "", "1ab://x": "",
	} {
		got, ok := urlScheme(ref)
		require.Equal(t, want, got, ref)
		require.Equal(t, want != "", ok, ref)
	}
}
