package sources

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/wire"
)

// sliceDecoder yields fixed payloads and counts one skipped chat, as an
// export format's decoder would.
type sliceDecoder struct {
	ps      []wire.Payload
	i       int
	skipped map[string]int64
}

func (d *sliceDecoder) Next(_ context.Context, p *wire.Payload) (Position, error) {
	if d.i == len(d.ps) {
		return Position{}, io.EOF
	}
	*p = d.ps[d.i]
	d.i++
	return Position{Line: int64(d.i * 10), Offset: int64(d.i * 100)}, nil
}

func (d *sliceDecoder) Close() error              { return nil }
func (d *sliceDecoder) Skipped() map[string]int64 { return d.skipped }

func exportPayload(id string, m wire.Message) wire.Payload {
	return wire.Payload{Timestamp: 1709284502, MsgID: id, ConversationID: "tg-1",
		Sender: &wire.Participant{ID: "tg-user1", Name: "Anna"}, Message: &m}
}

func readDecoder(t *testing.T, spec Spec, dec Decoder) result {
	t.Helper()
	spec.Now = nowFunc
	r := NewReader(spec, "result.json", dec, true)
	defer r.Close()
	var res result
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			res.errs = append(res.errs, le)
			continue
		}
		require.NoError(t, err)
		res.records = append(res.records, rec)
	}
	res.stats = r.Stats()
	return res
}

// TestLocalMediaNotHostedBecomesText: a local file (a file: URL) goes out as
// the text naming it while files cannot be hosted, counted; with
// MediaHosted it stays as the decoder gave it, file name, size and type
// included. A media message without a file is counted either way and
// follows --media-missing.
func TestLocalMediaNotHostedBecomesText(t *testing.T) {
	t.Parallel()
	photo := wire.Message{Type: wire.TypePicture, Text: "the invoice", Media: "file:///exp/photos/photo_12.jpg", FileName: "photo_12.jpg", FileSize: 183412}
	noFile := wire.Message{Type: wire.TypeVoice, MediaDuration: 4}
	text := wire.Message{Type: wire.TypeText, Text: "hi"}
	payloads := func() []wire.Payload {
		return []wire.Payload{exportPayload("a", photo), exportPayload("b", noFile), exportPayload("c", text)}
	}
	skipped := map[string]int64{SkipGroupChat: 2, SkipChatMessage: 40}

	res := readDecoder(t, Spec{}, &sliceDecoder{ps: payloads(), skipped: skipped})
	require.Equal(t, []string{"a", "c"}, res.msgids())
	require.Equal(t, &wire.Message{Type: wire.TypeText, Text: "[picture: photo_12.jpg] the invoice"}, res.records[0].Payload.Message)
	require.Len(t, res.errs, 1)
	require.Equal(t, "message.media", res.errs[0].Field)
	require.EqualValues(t, 20, res.errs[0].Line)
	require.Equal(t, map[string]int64{SkipGroupChat: 2, SkipChatMessage: 40, SkipMediaNotHosted: 1, SkipMediaWithoutFile: 1}, res.stats.Skipped)
	require.Equal(t, map[string]int64{SkipGroupChat: 2, SkipChatMessage: 40}, skipped, "the decoder's map is copied, not changed")

	res = readDecoder(t, Spec{MediaMissing: MediaMissingText}, &sliceDecoder{ps: payloads()})
	require.Equal(t, []string{"a", "b", "c"}, res.msgids())
	require.Equal(t, &wire.Message{Type: wire.TypeText, Text: "[voice]"}, res.records[1].Payload.Message)
	require.Equal(t, map[string]int64{SkipMediaNotHosted: 1, SkipMediaWithoutFile: 1}, res.stats.Skipped)

	res = readDecoder(t, Spec{MediaHosted: true, MediaMissing: MediaMissingText}, &sliceDecoder{ps: payloads()})
	require.Equal(t, &photo, res.records[0].Payload.Message, "hosted: the file stays for the hosting step")
	require.Equal(t, map[string]int64{SkipMediaWithoutFile: 1}, res.stats.Skipped)

	res = readDecoder(t, Spec{}, &sliceDecoder{ps: []wire.Payload{exportPayload("c", text)}})
	require.Nil(t, res.stats.Skipped, "nothing skipped: no map")
}

// TestFileURLInJSONL: the rule is the Reader's, so a JSONL written by
// convert (or by hand) with a local file follows it too.
func TestFileURLInJSONL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "offer.pdf"), []byte("%PDF-1.4\n"), 0o644))
	path := filepath.Join(dir, "local.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"timestamp":1709284502,"msgid":"m1","conversation_id":"c1","sender":{"id":"u","name":"U"},`+
		`"message":{"type":"file","media":"FILE://`+filepath.ToSlash(dir)+`/offer.pdf","file_name":"offer.pdf","file_size":9}}`+"\n"), 0o644))
	res := readAll(t, Spec{Kind: KindJSONL, Path: path})
	require.Empty(t, res.errs)
	require.Equal(t, "[file: offer.pdf]", res.records[0].Payload.Message.Text)
	require.Equal(t, map[string]int64{SkipMediaNotHosted: 1}, res.stats.Skipped)
}

func TestExportSpecCheck(t *testing.T) {
	t.Parallel()
	for _, kind := range ExportKinds {
		require.True(t, IsExportKind(kind))
		require.NoError(t, Spec{Kind: kind, Path: "x", Location: time.UTC}.Check()) // WhatsApp needs --tz
		require.ErrorContains(t, Spec{Kind: kind}.Check(), "no path")
		require.ErrorContains(t, Spec{Kind: kind, Path: "x", Table: "t"}.Check(), "for --source postgres")
		require.ErrorContains(t, Spec{Kind: kind, Path: "x", IgnoreColumns: []string{"a"}}.Check(), "not "+kind)
	}
	require.False(t, IsExportKind(KindJSONL))
}

// TestFolderIdentity: a folder export resumes its run while its data files
// are unchanged, and is a new run (another Version) when one is rewritten or
// added; media files do not count.
func TestFolderIdentity(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	result := filepath.Join(dir, "result.json")
	require.NoError(t, os.WriteFile(result, []byte(`{"messages":[]}`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "photos"), 0o755))
	spec := Spec{Kind: KindTelegram, Path: dir}
	first, err := spec.Identity()
	require.NoError(t, err)
	abs, _ := filepath.Abs(dir)
	require.Equal(t, "telegram:"+abs, first.Label)
	require.Equal(t, filepath.Base(dir), first.Base)
	require.Contains(t, first.Version, "1 data files")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "photos", "photo_1.jpg"), []byte("jpeg"), 0o644))
	again, err := spec.Identity()
	require.NoError(t, err)
	require.Equal(t, first, again, "a media file is not a new export")

	later := time.Now().Add(time.Hour)
	require.NoError(t, os.WriteFile(result, []byte(`{"messages":[{}]}`), 0o644))
	require.NoError(t, os.Chtimes(result, later, later))
	newer, err := spec.Identity()
	require.NoError(t, err)
	require.NotEqual(t, first.Version, newer.Version, "a rewritten result.json is a new export")
	require.Equal(t, first.Label, newer.Label)

	file, err := Spec{Kind: KindTelegram, Path: result}.Identity()
	require.NoError(t, err)
	require.Contains(t, file.Version, "17 bytes, modified")
}
