package main_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

// End-to-end media: the built binaries, a real SeaweedFS (reached through a
// counting proxy, so the test knows every upload), and kommo-sim
// downloading every media URL it accepts (--media-fetch on, its default)
// without credentials, as Kommo does.

// s3Proxy forwards to the test S3 server and counts the uploads it
// stored, by key (the preflight's probe objects aside); with delay set,
// each upload takes that long more (a slow link).
type s3Proxy struct {
	url   string
	mu    sync.Mutex
	puts  map[string]int
	delay atomic.Int64 // time.Duration
}

func newS3Proxy(t *testing.T, srv s3test.Server, delay time.Duration) *s3Proxy {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	require.NoError(t, err)
	p := &s3Proxy{puts: map[string]int{}}
	p.delay.Store(int64(delay))
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		// The host the client signed (the proxy's) is the host the server
		// checks the signature with: the request keeps it.
		r.Out.Host = r.In.Host
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if r.Method == http.MethodPut && resp.StatusCode == http.StatusOK && !strings.Contains(r.URL.Path, ".kommo-import-probe") {
			p.mu.Lock()
			p.puts[r.URL.Path]++
			p.mu.Unlock()
		}
		return nil
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(p.delay.Load()); r.Method == http.MethodPut && d > 0 {
			time.Sleep(d)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.url = hs.URL
	return p
}

// uploads returns the stored uploads by key.
func (p *s3Proxy) uploads() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.puts {
		out[k] = v
	}
	return out
}

// mediaE2E is a simulator, a database, a bucket behind a proxy and the
// environment kommo-import finds its AWS credentials in.
type mediaE2E struct {
	sim    *simProc
	im     *importer
	srv    s3test.Server
	bucket string
	proxy  *s3Proxy
	env    []string
}

func newMediaE2E(t *testing.T, delay time.Duration) *mediaE2E {
	t.Helper()
	e := &mediaE2E{sim: startSim(t, "--rate", "0"), srv: s3test.Get(t)}
	e.im = newImporter(t, e.sim)
	e.bucket = e.srv.Bucket(t)
	e.proxy = newS3Proxy(t, e.srv, delay)
	none := filepath.Join(t.TempDir(), "none")
	e.env = []string{"AWS_ACCESS_KEY_ID=" + e.srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + e.srv.SecretKey, "AWS_REGION=" + e.srv.Region,
		"AWS_CONFIG_FILE=" + none, "AWS_SHARED_CREDENTIALS_FILE=" + none, "AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN="}
	return e
}

// store is the flags of the test's store, under prefix.
func (e *mediaE2E) store(prefix string) []string {
	return []string{"--media-store", "s3://" + e.bucket + "/" + prefix, "--media-endpoint", e.proxy.url}
}

// cmd is a kommo-import command with the store's credentials in its environment.
func (e *mediaE2E) cmd(t *testing.T, env []string, args ...string) *exec.Cmd {
	cmd := e.im.managed(t, args...)
	cmd.Env = append(append(cmd.Env, e.env...), env...)
	return cmd
}

// run runs a command to its end.
func (e *mediaE2E) run(t *testing.T, env []string, args ...string) result {
	cmd := e.cmd(t, env, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return result{code: -1, err: err}
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

// simLedger is the simulator's ledger with each download's result, once
// every download has ended.
func simLedger(t *testing.T, s *simProc) []sim.LedgerEntry {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := s.statsErr()
		return err == nil && st.MediaPending == 0
	}, 30*time.Second, 20*time.Millisecond)
	resp, err := http.Get(s.url + "/_sim/ledger")
	require.NoError(t, err)
	defer resp.Body.Close()
	var out []sim.LedgerEntry
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// exportFile is a media file an export holds: its name and bytes.
type exportFile struct {
	name string
	data []byte
}

func fileOf(name string, size int, seed byte) exportFile {
	b := make([]byte, size)
	x := uint32(seed)*2654435761 + 7
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return exportFile{name, b}
}

// requireEveryFileArrived checks what the simulator received: every
// message whose media the export holds came with a URL of the store (a
// presigned one), the file's name and size, and was downloaded whole;
// nothing failed; the types are wantTypes; each file was uploaded once.
func (e *mediaE2E) requireEveryFileArrived(t *testing.T, files []exportFile, wantTypes ...string) []sim.LedgerEntry {
	t.Helper()
	entries := simLedger(t, e.sim)
	st := e.sim.stats(t)
	require.Empty(t, st.MediaFailed, "media the simulator could not fetch")
	require.Zero(t, st.Duplicates)
	byName := map[string]exportFile{}
	for _, f := range files {
		byName[filepath.Base(f.name)] = f
	}
	types := map[string]bool{}
	got := map[string]bool{}
	mediaMessages := 0
	for _, le := range entries {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(le.Payload, &p))
		if p.Message.Media == "" {
			continue
		}
		mediaMessages++
		f, ok := byName[p.Message.FileName]
		require.True(t, ok, "%s: %s is a file of the export", le.MsgID, p.Message.FileName)
		require.EqualValues(t, len(f.data), p.Message.FileSize, p.Message.FileName)
		require.True(t, strings.HasPrefix(p.Message.Media, e.proxy.url+"/"+e.bucket+"/"), p.Message.Media)
		require.Contains(t, p.Message.Media, "X-Amz-Signature=", "a presigned URL")
		require.NotNil(t, le.Media, le.MsgID)
		require.True(t, le.Media.OK, "%s: %+v", le.MsgID, le.Media)
		require.EqualValues(t, len(f.data), le.Media.Bytes)
		types[p.Message.Type] = true
		got[f.name] = true
	}
	for _, f := range files {
		require.True(t, got[f.name], "%s never arrived as media", f.name)
	}
	var want []string
	for ty := range types {
		want = append(want, ty)
	}
	require.ElementsMatch(t, wantTypes, want)
	for k, n := range e.proxy.uploads() {
		require.Equal(t, 1, n, "%s uploaded %d times", k, n)
	}
	require.EqualValues(t, mediaMessages, st.MediaFetched, "every media message downloaded")
	return entries
}

// telegramExport writes a Telegram Desktop chat export (result.json and its
// folders) whose messages hold a photo, a voice note, a video, a round
// video, a file and a sticker (sent twice), and a photo whose file is not
// on disk.
func telegramExport(t *testing.T) (string, []exportFile) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ChatExport_2024-05-02")
	files := []exportFile{
		fileOf("photos/photo_1@02-05-2024_10-00-05.jpg", 180_000, 1),
		fileOf("voice_messages/audio_1@02-05-2024_10-01-00.ogg", 24_000, 2),
		fileOf("video_files/clip_of_the_sofa.mp4", 900_000, 3),
		fileOf("round_video_messages/file_1@02-05-2024_10-03-00.mp4", 300_000, 4),
		fileOf("files/invoice 2044.pdf", 60_000, 5),
		fileOf("stickers/sticker.webp", 9_000, 6),
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, f.data, 0o644))
	}
	base := time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)
	var msgs []map[string]any
	add := func(client bool, fields map[string]any) {
		at := base.Add(time.Duration(len(msgs)) * time.Minute)
		m := map[string]any{"id": 7000 + len(msgs), "type": "message", "date": at.Format("2006-01-02T15:04:05"),
			"date_unixtime": fmt.Sprint(at.Unix()), "from": "Olga Support", "from_id": "user5550001", "text": "", "text_entities": []any{}}
		if client {
			m["from"], m["from_id"] = "Ivan Petrov", "user123456789"
		}
		for k, v := range fields {
			m[k] = v
		}
		msgs = append(msgs, m)
	}
	add(true, map[string]any{"text": "Hello, here is the sofa"})
	add(true, map[string]any{"photo": files[0].name, "photo_file_size": len(files[0].data), "width": 1280, "height": 960, "text": "this one"})
	add(false, map[string]any{"file": files[1].name, "media_type": "voice_message", "mime_type": "audio/ogg", "duration_seconds": 3})
	add(true, map[string]any{"file": files[2].name, "media_type": "video_file", "mime_type": "video/mp4", "duration_seconds": 12, "width": 640, "height": 480})
	add(true, map[string]any{"file": files[3].name, "media_type": "video_message", "mime_type": "video/mp4", "duration_seconds": 4})
	add(false, map[string]any{"file": files[4].name, "file_name": "invoice 2044.pdf", "file_size": len(files[4].data), "mime_type": "application/pdf", "text": "the invoice"})
	add(true, map[string]any{"file": files[5].name, "media_type": "sticker", "sticker_emoji": "👍", "width": 512, "height": 512})
	add(true, map[string]any{"photo": "photos/photo_2@02-05-2024_10-08-00.jpg", "width": 800, "height": 600, "text": "and this one"}) // not on disk
	add(false, map[string]any{"file": files[5].name, "media_type": "sticker", "sticker_emoji": "👍", "width": 512, "height": 512})
	add(false, map[string]any{"text": "Thank you!"})
	b, err := json.MarshalIndent(map[string]any{"name": "Ivan Petrov", "type": "personal_chat", "id": 123456789, "messages": msgs}, "", " ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "result.json"), b, 0o644))
	return dir, files
}

// whatsappZip writes WhatsApp's iPhone "Export chat" zip with a photo, a
// voice note, a video, a document and a sticker, some stored and some
// compressed, and a photo the export left out.
func whatsappZip(t *testing.T) (string, []exportFile) {
	t.Helper()
	files := []exportFile{
		fileOf("00000004-PHOTO-2024-01-05-10-01-00.jpg", 150_000, 11),
		fileOf("00000005-AUDIO-2024-01-05-10-02-00.opus", 30_000, 12),
		fileOf("00000006-VIDEO-2024-01-05-10-03-00.mp4", 700_000, 13),
		fileOf("00000007-Catalog Spring.pdf", 45_000, 14),
		fileOf("00000008-STICKER-2024-01-05-10-05-00.webp", 7_000, 15),
	}
	lrm := "\u200e"
	chat := strings.Join([]string{
		"[1/5/24, 10:00:00 AM] Olivia Brown: " + lrm + "Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.",
		"[1/5/24, 10:00:30 AM] Olivia Brown: Hi, is the spring catalogue out?",
		lrm + "[1/5/24, 10:01:00 AM] Olivia Brown: " + lrm + "<attached: " + files[0].name + ">",
		lrm + "[1/5/24, 10:02:00 AM] Acme Support: " + lrm + "<attached: " + files[1].name + ">",
		lrm + "[1/5/24, 10:03:00 AM] Acme Support: " + lrm + "<attached: " + files[2].name + ">",
		lrm + "[1/5/24, 10:04:00 AM] Acme Support: Catalog Spring.pdf • " + lrm + "12 pages " + lrm + "<attached: " + files[3].name + ">",
		lrm + "[1/5/24, 10:05:00 AM] Olivia Brown: " + lrm + "<attached: " + files[4].name + ">",
		"[1/5/24, 10:06:00 AM] Olivia Brown: " + lrm + "image omitted",
		"[1/5/24, 10:07:00 AM] Olivia Brown: Thanks!",
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "WhatsApp Chat - Olivia Brown.zip")
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	w, err := zw.Create("_chat.txt")
	require.NoError(t, err)
	_, err = w.Write([]byte(chat))
	require.NoError(t, err)
	for i, mf := range files {
		method := zip.Deflate
		if i%2 == 0 {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: mf.name, Method: method, Modified: time.Date(2024, 1, 5, 11, 0, 0, 0, time.UTC)})
		require.NoError(t, err)
		_, err = w.Write(mf.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
	return path, files
}

// messengerExport is the Messenger sample with the video it lacks put in
// place: photos, a voice clip, a GIF, a video, a file and a sticker; one
// photo is still missing.
func messengerExport(t *testing.T) (string, []exportFile) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "facebook-2025")
	require.NoError(t, os.CopyFS(dir, os.DirFS("../../testdata/messenger/2025")))
	root := filepath.Join(dir, "your_facebook_activity")
	video := fileOf("messages/inbox/annamuller_10158123456789012/videos/1234_missing_video.mp4", 400_000, 21)
	require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(video.name)), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, video.name), video.data, 0o644))
	files := []exportFile{video}
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".json") || p == filepath.Join(root, video.name) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, exportFile{p, b})
		return nil
	}))
	return dir, files
}

// TestE2EExportsWithMediaArriveAsMedia: a Telegram export, a WhatsApp zip
// and a Messenger export, each imported by the binary with a media store:
// every picture, voice note, video, file and sticker the export holds
// arrives as media the simulator downloads, with its size and name, each
// file uploaded once; the files the export lacks go out as text, counted in
// the summary. The same command again uploads and sends nothing.
func TestE2EExportsWithMediaArriveAsMedia(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind   string
		export func(*testing.T) (string, []exportFile)
		args   []string
		code   int
		types  []string
		media  int64 // messages with a local file
		noFile int64 // media without a file, sent as text
	}{
		{"telegram", telegramExport, []string{"--bot-id", "BOT-1"}, exitDone,
			[]string{wire.TypePicture, wire.TypeVoice, wire.TypeVideo, wire.TypeFile, wire.TypeSticker}, 7, 1},
		{"whatsapp", whatsappZip, []string{"--tz", "Europe/London", "--date-order", "mdy", "--bot-id", "BOT-1"}, exitDone,
			[]string{wire.TypePicture, wire.TypeVoice, wire.TypeVideo, wire.TypeFile, wire.TypeSticker}, 5, 1},
		// The sample has a damaged thread and a record with a text
		// timestamp: rejected, so the run is incomplete (exit 3).
		{"messenger", messengerExport, []string{"--bot-id", "BOT-1"}, exitIncomplete,
			[]string{wire.TypePicture, wire.TypeVoice, wire.TypeVideo, wire.TypeFile, wire.TypeSticker}, 7, 1},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			e := newMediaE2E(t, 0)
			path, files := tc.export(t)
			args := append(append([]string{"run", "--source", tc.kind + ":" + path, "--media-missing", "text",
				"--rate", "unlimited", "--progress", "none", "--json", "--run", e2eRun}, tc.args...), e.store(tc.kind)...)
			r := e.run(t, nil, args...)
			requireCode(t, tc.code, r)
			sum := summary(t, r)
			require.NotNil(t, sum.Media, r.stdout)
			require.Equal(t, tc.media, sum.Media.Messages)
			require.Equal(t, tc.media, sum.Media.SentAsMedia)
			require.EqualValues(t, len(files), sum.Media.Files)
			require.EqualValues(t, len(files), sum.Media.Uploaded)
			require.Equal(t, tc.noFile, sum.Skipped["media without a file"], "%v", sum.Skipped)
			e.requireEveryFileArrived(t, files, tc.types...)
			require.Len(t, e.proxy.uploads(), len(files))

			sent := len(ledgertest.ReadLedger(t, e.sim.ledger))
			again := e.run(t, nil, args...)
			requireCode(t, tc.code, again)
			require.Zero(t, summary(t, again).SentNow)
			require.Len(t, ledgertest.ReadLedger(t, e.sim.ledger), sent)
			require.Len(t, e.proxy.uploads(), len(files), "nothing uploaded again")
		})
	}
}

// mediaJSONL writes a JSONL export of convs conversations of perConv
// messages, every third a picture of its own beside it, and returns its
// path and files.
func mediaJSONL(t *testing.T, convs, perConv, size int) (string, []exportFile) {
	t.Helper()
	dir := t.TempDir()
	var files []exportFile
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	base := time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	for i := range perConv {
		for c := range convs {
			p := wire.Payload{MsgID: fmt.Sprintf("m-%02d-%03d", c, i), ConversationID: fmt.Sprintf("c-%02d", c),
				MsecTimestamp: base + int64(i)*60_000 + int64(c),
				Sender:        &wire.Participant{ID: fmt.Sprintf("client-%02d", c), Name: fmt.Sprintf("Client %d", c)},
				Message:       &wire.Message{Type: wire.TypeText, Text: fmt.Sprintf("message %d", i)}}
			if i%3 == 1 {
				f := fileOf(fmt.Sprintf("photos/c%02d-%03d.jpg", c, i), size+c*1000+i, byte(c*perConv+i))
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "photos"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.FromSlash(f.name)), f.data, 0o644))
				files = append(files, f)
				p.Message = &wire.Message{Type: wire.TypePicture, Media: f.name}
			}
			require.NoError(t, enc.Encode(&p))
		}
	}
	path := filepath.Join(dir, "export.jsonl")
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o644))
	return path, files
}

// TestE2EMediaKillAndResume: kommo-import killed with SIGKILL while it
// uploads (over a slow link) and sends, then run again with the same
// command: no file is uploaded twice and no message sent twice; a file
// deleted while the run was down, before it was uploaded, goes out as its
// text placeholder, counted in the summary and listed by report.
func TestE2EMediaKillAndResume(t *testing.T) {
	t.Parallel()
	e := newMediaE2E(t, 120*time.Millisecond)
	path, files := mediaJSONL(t, 4, 30, 40_000)
	total := 4 * 30
	args := append([]string{"run", "--source", "jsonl:" + path, "--media-missing", "text", "--rate", "25", "--workers", "4",
		"--media-uploads", "1", "--progress", "none", "--json", "--run", e2eRun, "--reconcile-wait", "300ms", "--request-timeout", "3s"},
		e.store("kill")...)
	cmd := e.cmd(t, nil, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	conn := connect(t, e.im.dbURL)
	ctx := context.Background()
	uploadsRecorded := func() int {
		var n int
		if conn.QueryRow(ctx, `SELECT count(*) FROM kommo_import_media_uploads WHERE run_name = $1`, e2eRun).Scan(&n) != nil {
			return -1
		}
		return n
	}
	// The simulator's count, not its ledger file: a line half written
	// when read failed the test under make test-under-load.
	require.Eventually(t, func() bool {
		st, err := e.sim.statsErr()
		return err == nil && st.Accepted >= int64(total/4)
	}, 60*time.Second, 10*time.Millisecond, "stderr: %s", stderr.String())
	recorded := uploadsRecorded()
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	sentAtKill := len(ledgertest.ReadLedger(t, e.sim.ledger))
	t.Logf("killed with %d of %d messages sent and %d of %d files recorded", sentAtKill, total, recorded, len(files))
	require.Less(t, sentAtKill, total)
	require.Less(t, recorded, len(files), "killed while files were still to be uploaded")

	// A file of an unsent message that was not uploaded yet disappears.
	var gone string
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT m.media_path FROM kommo_import_messages m
		WHERE m.run_name = $1 AND m.state = 'pending' AND m.media_path IS NOT NULL
		  AND NOT EXISTS (SELECT 1 FROM kommo_import_media_uploads u WHERE u.local_path = m.media_path)
		ORDER BY m.msec_timestamp DESC LIMIT 1`, e2eRun).Scan(&gone))
	require.NoError(t, os.Remove(gone))

	e.proxy.delay.Store(0)
	r := e.run(t, nil, args...)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	require.EqualValues(t, 1, sum.Media.Placeholders)
	require.EqualValues(t, len(files)-1, sum.Media.SentAsMedia)

	entries := ledgertest.ReadLedger(t, e.sim.ledger)
	require.Len(t, entries, total, "every message once")
	var remaining []exportFile
	for _, f := range files {
		if !strings.HasSuffix(gone, filepath.FromSlash(f.name)) {
			remaining = append(remaining, f)
		}
	}
	e.requireEveryFileArrived(t, remaining, wire.TypePicture) // and no key uploaded twice
	// The store holds each file once (and the deleted one if its upload
	// was on the way when the process was killed). An upload the kill cut
	// off may have been stored without the proxy seeing its answer: the
	// resumed run found it with a HEAD.
	keys := e.srv.Keys(t, e.bucket)
	require.GreaterOrEqual(t, len(keys), len(remaining))
	require.LessOrEqual(t, len(keys), len(remaining)+1)

	rep := e.run(t, nil, "report", "--run", e2eRun, "--format", "jsonl")
	requireCode(t, exitDone, rep)
	var line struct{ Kind, MsgID, Reason string }
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(rep.stdout)), &line), rep.stdout)
	require.Equal(t, "media_as_text", line.Kind)
	require.Contains(t, line.Reason, filepath.Base(gone)+": missing")
}

// TestE2EMediaStoreRefusedAtPreflight: wrong credentials, or a store where
// nothing answers, stop the run within seconds before anything is staged,
// sent or stored: exit 5 for the refusal, 4 for no answer, naming the store.
func TestE2EMediaStoreRefusedAtPreflight(t *testing.T) {
	t.Parallel()
	e := newMediaE2E(t, 0)
	path, _ := mediaJSONL(t, 2, 6, 1000)
	args := []string{"run", "--source", "jsonl:" + path, "--rate", "unlimited", "--progress", "none", "--json", "--run", e2eRun}
	started := time.Now()
	r := e.run(t, []string{"AWS_SECRET_ACCESS_KEY=not-the-secret"}, append(args, e.store("x")...)...)
	requireCode(t, exitStopped, r)
	require.Less(t, time.Since(started), 15*time.Second)
	require.Contains(t, r.stderr, "media store s3://"+e.bucket+"/x")
	require.Contains(t, r.stderr, "SignatureDoesNotMatch")
	require.Contains(t, r.stderr, "nothing was sent")
	require.NotContains(t, r.stderr, "not-the-secret")
	requireNothingStaged(t, e.im)

	r = e.run(t, nil, append(args, "--media-store", "s3://"+e.bucket+"/x", "--media-endpoint", "http://"+freePort(t))...)
	requireCode(t, exitInterrupted, r)
	require.Contains(t, r.stderr, "nothing answered at the store")
	requireNothingStaged(t, e.im)

	require.Empty(t, ledgertest.ReadLedger(t, e.sim.ledger))
	require.Empty(t, e.srv.Keys(t, e.bucket), "nothing stored")
}
