package importer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// The media send path against real parts: SeaweedFS (internal/s3test), the
// simulator downloading every media URL it accepts without credentials, as
// Kommo does, and PostgreSQL. Only the store's HTTP transport is wrapped, to
// count its PUTs and, in two tests, to make it fail.

// storeTransport counts a store's content uploads that succeeded (the
// preflight's probe object aside; a PUT the store failed stored nothing)
// and can fail requests on demand.
type storeTransport struct {
	puts atomic.Int64
	mu   sync.Mutex
	keys map[string]int // successful PUTs by key
	// fail, when set, answers a request instead of the store (nil: let it through).
	fail atomic.Pointer[func(*http.Request) (*http.Response, error)]
}

func (s *storeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if f := s.fail.Load(); f != nil {
		if resp, err := (*f)(r); resp != nil || err != nil {
			return resp, err
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && resp.StatusCode == http.StatusOK && !strings.Contains(r.URL.Path, ".kommo-import-probe") {
		s.puts.Add(1)
		s.mu.Lock()
		if s.keys == nil {
			s.keys = map[string]int{}
		}
		s.keys[r.URL.Path]++
		s.mu.Unlock()
	}
	return resp, err
}

// requireEachOnce checks that no key was uploaded twice.
func (s *storeTransport) requireEachOnce(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, n := range s.keys {
		require.Equal(t, 1, n, "%s uploaded %d times", k, n)
	}
}

// mediaEnv is a harness with a simulator that fetches media, a bucket of
// the test's own and a store on it.
type mediaEnv struct {
	*harness
	srv    s3test.Server
	bucket string
	tr     *storeTransport
	cfg    media.Config
	store  *media.Store
}

func newMediaEnv(t *testing.T, opts sim.Options) *mediaEnv {
	t.Helper()
	opts.MediaFetch = &sim.MediaFetch{Timeout: 10 * time.Second}
	e := &mediaEnv{harness: newHarness(t, opts), srv: s3test.Get(t), tr: &storeTransport{}}
	e.bucket = e.srv.Bucket(t)
	conf, creds := s3test.Profile(t, "kommo-test", e.srv.AccessKey, e.srv.SecretKey)
	e.cfg = media.Config{Store: "s3://" + e.bucket + "/kommo", Endpoint: e.srv.Endpoint, Region: e.srv.Region,
		Profile: "kommo-test", SharedConfigFiles: []string{conf}, SharedCredentialsFiles: []string{creds},
		HTTPClient: &http.Client{Transport: e.tr}}
	e.store = e.open(t, e.cfg)
	return e
}

func (e *mediaEnv) open(t *testing.T, c media.Config) *media.Store {
	t.Helper()
	s, err := media.Open(context.Background(), c)
	require.NoError(t, err)
	return s
}

// with sets the importer's media store and source (a JSONL export whose
// local media are hosted; text: --media-missing text).
func (e *mediaEnv) with(path string, text bool, mod func(*importer.Config)) func(*importer.Config) {
	return func(c *importer.Config) {
		c.Media, c.MediaMissingText = e.store, text
		c.Open = openHosted(path, text)
		if mod != nil {
			mod(c)
		}
	}
}

func openHosted(path string, text bool) importer.OpenFunc {
	return func(ctx context.Context) (importer.Source, error) {
		spec := sources.Spec{Kind: sources.KindJSONL, Path: path, MediaHosted: true}
		if text {
			spec.MediaMissing = sources.MediaMissingText
		}
		return sources.Open(ctx, spec)
	}
}

// mediaFile is a local file of an export.
type mediaFile struct {
	rel  string
	size int
	seed byte
}

// mediaMsg is a message of an export; file "" is a text message.
type mediaMsg struct {
	conv, typ, file, text string
}

// writeMediaExport writes files under dir and a JSONL export of msgs beside
// them (media as paths relative to it, in a timestamp order per
// conversation) and returns the export's path and the files' contents.
func writeMediaExport(t *testing.T, dir string, files []mediaFile, msgs []mediaMsg) (string, map[string][]byte) {
	t.Helper()
	content := map[string][]byte{}
	for _, f := range files {
		b := make([]byte, f.size)
		x := uint32(f.seed)*2654435761 + 1
		for i := range b {
			x = x*1664525 + 1013904223
			b[i] = byte(x >> 24)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, b, 0o644))
		content[f.rel] = b
	}
	path := filepath.Join(dir, "export.jsonl")
	out, err := os.Create(path)
	require.NoError(t, err)
	enc := json.NewEncoder(out)
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	for i, m := range msgs {
		p := wire.Payload{MsgID: fmt.Sprintf("m-%03d", i), ConversationID: m.conv, MsecTimestamp: base + int64(i)*1000,
			Sender:  &wire.Participant{ID: "client-" + m.conv, Name: "Client " + m.conv},
			Message: &wire.Message{Type: wire.TypeText, Text: m.text}}
		if m.file != "" {
			p.Message.Type, p.Message.Media = m.typ, m.file
		}
		require.NoError(t, enc.Encode(&p))
	}
	require.NoError(t, out.Close())
	return path, content
}

// exportFiles is an export's media: a picture, a voice note, a video, a
// file and a sticker (sent three times), in two conversations, and the
// same picture's bytes under another name.
var exportFiles = []mediaFile{
	{"photos/IMG_2041.jpg", 300_000, 1}, {"voice/audio_1.ogg", 20_000, 2}, {"video/clip 1.mp4", 1_200_000, 3},
	{"files/invoice 1842.pdf", 50_000, 4}, {"stickers/sticker.webp", 8_000, 5}, {"photos/same bytes.jpg", 300_000, 1},
}

var exportMsgs = []mediaMsg{
	{"c-anna", "", "", "hello"},
	{"c-anna", wire.TypePicture, "photos/IMG_2041.jpg", "is this one in stock?"},
	{"c-anna", wire.TypeVoice, "voice/audio_1.ogg", ""},
	{"c-boris", wire.TypeSticker, "stickers/sticker.webp", ""},
	{"c-anna", wire.TypeVideo, "video/clip 1.mp4", "how it looks"},
	{"c-boris", wire.TypeFile, "files/invoice 1842.pdf", "the invoice"},
	{"c-anna", wire.TypeSticker, "stickers/sticker.webp", ""},
	{"c-boris", wire.TypePicture, "photos/same bytes.jpg", ""},
	{"c-boris", wire.TypeSticker, "stickers/sticker.webp", ""},
	{"c-boris", "", "", "thanks"},
}

// requireMediaArrived checks every accepted media message's download: all
// fetched, none failed, each of its file's size and name, and its URL a
// presigned one of the bucket (the simulator keeps URLs without their query).
func (e *mediaEnv) requireMediaArrived(t *testing.T, content map[string][]byte, wantMedia int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.sim.WaitMedia(ctx))
	st := e.sim.Stats()
	require.Empty(t, st.MediaFailed, "media the simulator could not fetch")
	require.EqualValues(t, wantMedia, st.MediaFetched)
	n := 0
	for _, le := range e.sim.Ledger() {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(le.Payload, &p))
		if p.Message.Media == "" {
			continue
		}
		n++
		require.NotNil(t, le.Media, le.MsgID)
		require.True(t, le.Media.OK, "%s: %+v", le.MsgID, le.Media)
		u, err := url.Parse(p.Message.Media)
		require.NoError(t, err)
		require.Equal(t, "AWS4-HMAC-SHA256", u.Query().Get("X-Amz-Algorithm"), "a presigned URL")
		require.Contains(t, u.Path, "/"+e.bucket+"/kommo/sha256/")
		var want []byte
		for rel, b := range content {
			if filepath.Base(rel) == p.Message.FileName && int64(len(b)) == p.Message.FileSize {
				want = b
			}
		}
		require.NotNil(t, want, "%s: %s of %d bytes is a file of the export", le.MsgID, p.Message.FileName, p.Message.FileSize)
		require.EqualValues(t, len(want), le.Media.Bytes)
	}
	require.Equal(t, wantMedia, n)
	e.tr.requireEachOnce(t)
}

// TestLocalMediaArriveAsMedia: an export's picture, voice note, video, file
// and sticker arrive as media the simulator downloads with their size and
// name; each file is uploaded once (the sticker sent three times: one PUT;
// the same bytes under another name are an object of their own, since the
// key ends with the name); the run's status counts them; the same command
// again uploads and sends nothing.
func TestLocalMediaArriveAsMedia(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, content := writeMediaExport(t, t.TempDir(), exportFiles, exportMsgs)
	sum := e.run("media", path, e.with(path, false, nil))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.EqualValues(t, len(exportMsgs), sum.SentNow)
	e.requireMediaArrived(t, content, 8)
	require.EqualValues(t, 6, e.tr.puts.Load(), "one PUT per file (a key per name: the same bytes under two names are two objects)")
	require.Equal(t, &importer.MediaStatus{Messages: 8, SentAsMedia: 8, Files: 6, Uploaded: 6, Bytes: 1_878_000}, sum.Media)
	require.NotNil(t, sum.MediaNow)
	require.EqualValues(t, 6, sum.MediaNow.Uploaded+sum.MediaNow.Reused)

	again := e.run("media", path, e.with(path, false, nil))
	require.Zero(t, again.SentNow)
	require.EqualValues(t, 6, e.tr.puts.Load(), "nothing uploaded again")
	require.Len(t, e.sim.Ledger(), len(exportMsgs))
}

// manyMediaExport is a larger export: convs conversations of perConv
// messages, every third a picture of its own, so the uploader's window,
// its credit and the workers' turns all come into play.
func manyMediaExport(t *testing.T, dir string, convs, perConv int) (string, map[string][]byte, int) {
	var files []mediaFile
	var msgs []mediaMsg
	for i := range perConv {
		for c := range convs {
			conv := fmt.Sprintf("c-%02d", c)
			if i%3 == 1 {
				rel := fmt.Sprintf("photos/%s-%03d.jpg", conv, i)
				files = append(files, mediaFile{rel, 2_000 + c*100 + i, byte(c*perConv + i)})
				msgs = append(msgs, mediaMsg{conv, wire.TypePicture, rel, ""})
			} else {
				msgs = append(msgs, mediaMsg{conv, "", "", fmt.Sprintf("text %d", i)})
			}
		}
	}
	path, content := writeMediaExport(t, dir, files, msgs)
	return path, content, len(files)
}

// TestTheUploaderKeepsAhead: with the uploader at most a few messages ahead
// and sending paced, most files are put by the uploader, not at their
// message's turn (the first few are, and more on a loaded machine: 11 of 30
// at --rate 60 once under make test-under-load, which is why the rate is 20
// and the bound a third; with no uploader all 30 are), and every one arrives.
func TestTheUploaderKeepsAhead(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, content, nfiles := manyMediaExport(t, t.TempDir(), 6, 15)
	sum := e.run("ahead", path, e.with(path, false, func(c *importer.Config) {
		c.Rate, c.Workers, c.MediaAhead = 20, 3, 4
	}))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	e.requireMediaArrived(t, content, nfiles)
	require.EqualValues(t, nfiles, e.tr.puts.Load(), "%v %+v", e.tr.keys, sum.MediaNow)
	require.EqualValues(t, nfiles, sum.MediaNow.Uploaded)
	require.LessOrEqual(t, sum.MediaNow.AtTurn, int64(nfiles/3), "most files were put ahead of their turn")
}

// TestAHardStopResumesWithoutASecondUpload: a run stopped at once while it
// uploads and sends, then run again, uploads each file once and sends each
// message once: an upload whose row was written costs a presign, one whose
// row was lost a HEAD.
func TestAHardStopResumesWithoutASecondUpload(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, content, nfiles := manyMediaExport(t, t.TempDir(), 5, 18)
	total := 5 * 18
	ctx, cancel := context.WithCancel(context.Background())
	// RequestTimeout: the harness's client gives up after 2 s, so an
	// in-doubt message of the stopped run is fenced that long, not 30 s.
	im := e.importer("crash", path, e.with(path, false, func(c *importer.Config) {
		c.Rate, c.Workers, c.MediaAhead, c.RequestTimeout = 40, 3, 6, 2*time.Second
	}))
	done := make(chan error, 1)
	go func() { _, err := im.Run(ctx, nil); done <- err }()
	require.Eventually(t, func() bool { return len(e.sim.Ledger()) >= total/3 }, 30*time.Second, 5*time.Millisecond)
	putsAtStop := e.tr.puts.Load()
	cancel()
	require.ErrorIs(t, <-done, importer.ErrInterrupted)
	require.Less(t, len(e.sim.Ledger()), total, "stopped part-way")
	require.Less(t, putsAtStop, int64(nfiles), "stopped while files were still to be put")

	sum := e.run("crash", path, e.with(path, false, func(c *importer.Config) { c.RequestTimeout = 2 * time.Second }))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	e.requireMediaArrived(t, content, nfiles) // and no key uploaded twice
	// A PUT the stop cut off may have stored its object (the resumed run
	// finds it with a HEAD) or not (it is put then): at most one each.
	require.LessOrEqual(t, e.tr.puts.Load(), int64(nfiles))
	require.Len(t, e.srv.Keys(t, e.bucket), nfiles)
	require.Zero(t, e.sim.Stats().Duplicates)
	require.Len(t, e.sim.Ledger(), total)
}

// stageOnly stages and plans the run without sending (a soft stop asked for
// before sending begins).
func stageOnly(t *testing.T, im *importer.Importer) {
	t.Helper()
	soft := make(chan struct{})
	close(soft)
	_, err := im.Run(context.Background(), soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
}

// TestAFileGoneAtItsTurn: files that go missing or empty after staging go
// out as their text placeholder with --media-missing text, counted and
// listed; without it their messages fail with the reason, holding their
// conversations, and retry sends them as media once the files are back.
func TestAFileGoneAtItsTurn(t *testing.T) {
	t.Parallel()
	for _, text := range []bool{true, false} {
		t.Run(fmt.Sprintf("text=%v", text), func(t *testing.T) {
			t.Parallel()
			e := newMediaEnv(t, sim.Options{})
			dir := t.TempDir()
			path, content := writeMediaExport(t, dir, exportFiles, exportMsgs)
			stageOnly(t, e.importer("gone", path, e.with(path, text, nil)))
			require.NoError(t, os.Rename(filepath.Join(dir, "video/clip 1.mp4"), filepath.Join(dir, "clip.bak")))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "files/invoice 1842.pdf"), nil, 0o644))

			sum := e.run("gone", path, e.with(path, text, nil))
			if text {
				require.Equal(t, importer.OutcomeDone, sum.Outcome)
				// Every message once; on a loaded machine one can outlive the
				// harness's 2 s request timeout and be found in its chat's
				// history instead (make test-under-load saw 9 sent now of 10, the
				// run done; the ledger is what says each arrived once).
				require.EqualValues(t, len(exportMsgs), sum.SentNow+sum.InDoubtFound, "sent %d, found %d", sum.SentNow, sum.InDoubtFound)
				require.Len(t, e.sim.Ledger(), len(exportMsgs), "each message once")
				e.requireMediaArrived(t, content, 6)
				require.Equal(t, int64(2), sum.Media.Placeholders)
				require.Equal(t, int64(2), sum.MediaNow.Placeholders)
				texts := map[string]string{}
				for _, le := range e.sim.Ledger() {
					var p wire.Payload
					require.NoError(t, json.Unmarshal(le.Payload, &p))
					texts[le.MsgID] = p.Message.Type + ": " + p.Message.Text
				}
				require.Equal(t, "text: [video: clip 1.mp4] how it looks", texts["m-004"])
				require.Equal(t, "text: [file: invoice 1842.pdf] the invoice", texts["m-005"])
				var listed []string
				require.NoError(t, importer.EachMediaPlaceholder(context.Background(), e.pool, "gone", func(m *importer.MediaPlaceholder) error {
					listed = append(listed, m.MsgID+" "+m.Reason)
					return nil
				}))
				require.Len(t, listed, 2)
				require.Contains(t, listed[0], "clip 1.mp4: missing")
				require.Contains(t, listed[1], "invoice 1842.pdf: empty")
				return
			}
			require.Equal(t, importer.OutcomeIncomplete, sum.Outcome)
			require.EqualValues(t, 2, sum.Failed)
			require.Equal(t, int64(2), sum.Media.Failed)
			require.EqualValues(t, 2, sum.Held, "their conversations wait (hold)")
			require.EqualValues(t, 4, sum.HeldMessages, "the sticker after the video, the three after the invoice")
			var reasons []string
			require.NoError(t, importer.EachFailed(context.Background(), e.pool, "gone", func(m *importer.FailedMessage) error {
				reasons = append(reasons, m.MsgID+" "+m.LastError)
				return nil
			}))
			require.Len(t, reasons, 2)
			require.Contains(t, reasons[0], "m-004 media: media file ")
			require.Contains(t, reasons[0], "clip 1.mp4: missing")
			require.Contains(t, reasons[1], "invoice 1842.pdf: empty")

			// The files back, retry sends them and what they held, as media.
			require.NoError(t, os.Rename(filepath.Join(dir, "clip.bak"), filepath.Join(dir, "video/clip 1.mp4")))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "files/invoice 1842.pdf"), content["files/invoice 1842.pdf"], 0o644))
			_, err := importer.ResetFailed(context.Background(), e.pool, "gone", importer.Selection{})
			require.NoError(t, err)
			sum = e.run("gone", path, e.with(path, text, nil))
			require.Equal(t, importer.OutcomeDone, sum.Outcome)
			e.requireMediaArrived(t, content, 8)
			require.Equal(t, &importer.MediaStatus{Messages: 8, SentAsMedia: 8, Files: 6, Uploaded: 6, Bytes: 1_878_000}, sum.Media,
				"the problems cleared once the files went out")
			require.Len(t, e.sim.Ledger(), len(exportMsgs))
		})
	}
}

// s3Refusal answers like S3 refusing a request.
func s3Refusal(status int, code string) *http.Response {
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>refused by the test</Message></Error>`
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// TestAStoreThatFailsForAWhileParks: uploads failing with 503 SlowDown for
// a while are retried by the uploader and park the conversations whose
// turn meets them, with backoff (the others go on); once the store
// recovers every file arrives, once.
func TestAStoreThatFailsForAWhileParks(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, content := writeMediaExport(t, t.TempDir(), exportFiles, exportMsgs)
	// Every upload fails for the first 400 ms after the first one: the
	// uploader's own retries and the messages' turns both meet it.
	var first atomic.Int64
	fail := func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodPut || strings.Contains(r.URL.Path, ".kommo-import-probe") {
			return nil, nil
		}
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		if time.Duration(now-first.Load()) < 400*time.Millisecond {
			return s3Refusal(http.StatusServiceUnavailable, "SlowDown"), nil
		}
		return nil, nil
	}
	e.tr.fail.Store(&fail)
	sum := e.run("flaky", path, e.with(path, false, nil))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.Positive(t, sum.Retries)
	e.requireMediaArrived(t, content, 8)
	require.EqualValues(t, 6, e.tr.puts.Load())
	require.Zero(t, e.sim.Stats().Duplicates)
}

// TestAStoreThatRefusesStopsTheRun: a store that refuses uploads after the
// preflight (the key's permission taken away) stops the run, naming the
// store; the message whose file it was is not sent, and is sent (as media)
// when the run is resumed with the store working.
func TestAStoreThatRefusesStopsTheRun(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, content := writeMediaExport(t, t.TempDir(), exportFiles, exportMsgs)
	fail := func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && !strings.Contains(r.URL.Path, ".kommo-import-probe") {
			return s3Refusal(http.StatusForbidden, "AccessDenied"), nil
		}
		return nil, nil
	}
	e.tr.fail.Store(&fail)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := e.importer("refused", path, e.with(path, false, nil)).Run(ctx, nil)
	var me *importer.MediaError
	require.ErrorAs(t, err, &me)
	require.True(t, me.Refused())
	require.False(t, me.Preflight)
	require.False(t, errors.Is(err, importer.ErrInterrupted), "the operator's to fix")
	require.Contains(t, err.Error(), "media store s3://"+e.bucket+"/kommo")
	require.Contains(t, err.Error(), "AccessDenied")
	require.Equal(t, importer.OutcomeStopped, sum.Outcome)
	for _, le := range e.sim.Ledger() {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(le.Payload, &p))
		require.Empty(t, p.Message.Media, "no media message went out")
	}
	e.tr.fail.Store(nil)
	sum = e.run("refused", path, e.with(path, false, nil))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	e.requireMediaArrived(t, content, 8)
	require.Len(t, e.sim.Ledger(), len(exportMsgs))
}

// requireNoRun checks that nothing was written for the run.
func (h *harness) requireNoRun(t *testing.T, name string) {
	t.Helper()
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM kommo_import_runs WHERE name = $1`, name).Scan(&n))
	require.Zero(t, n, "nothing is written for a run whose preflight failed")
}

// TestMediaPreflight: a store with a wrong secret, a read-only key, a bucket
// that does not exist, or an endpoint where nothing listens stops the run
// within seconds, before anything is written or sent, naming the store; a
// refusal is the operator's (stopped), no answer an interruption.
func TestMediaPreflight(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, _ := writeMediaExport(t, t.TempDir(), exportFiles, exportMsgs)
	ro, roCreds := s3test.Profile(t, "ro", e.srv.ReadOnlyAccessKey, e.srv.ReadOnlySecretKey)
	bad, badCreds := s3test.Profile(t, "bad", e.srv.AccessKey, "not-the-secret")
	l := closedAddr()
	for _, tc := range []struct {
		name    string
		cfg     media.Config
		refused bool
		want    string
	}{
		{"wrong secret", media.Config{Store: e.cfg.Store, Endpoint: e.srv.Endpoint, Profile: "bad", SharedConfigFiles: []string{bad}, SharedCredentialsFiles: []string{badCreds}}, true, "SignatureDoesNotMatch"},
		{"read-only key", media.Config{Store: e.cfg.Store, Endpoint: e.srv.Endpoint, Profile: "ro", SharedConfigFiles: []string{ro}, SharedCredentialsFiles: []string{roCreds}}, true, "AccessDenied"},
		{"no such bucket", func() media.Config {
			c := e.cfg
			c.Store = "s3://kt-no-such-bucket-here/x"
			c.HTTPClient = nil
			return c
		}(), true, "NoSuchBucket"},
		{"nothing listening", func() media.Config { c := e.cfg; c.Endpoint = "http://" + l; c.HTTPClient = nil; return c }(), false, "probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := e.open(t, tc.cfg)
			name := "pre-" + strings.ReplaceAll(tc.name, " ", "-")
			started := time.Now()
			_, err := e.importer(name, path, func(c *importer.Config) { c.Media, c.Open = st, openHosted(path, false) }).Run(context.Background(), nil)
			require.Less(t, time.Since(started), 20*time.Second)
			var me *importer.MediaError
			require.ErrorAs(t, err, &me)
			require.True(t, me.Preflight)
			require.Equal(t, tc.refused, me.Refused(), "%v", err)
			require.Equal(t, !tc.refused, errors.Is(err, importer.ErrInterrupted))
			require.Contains(t, err.Error(), "media store "+tc.cfg.Store)
			require.Contains(t, err.Error(), tc.want)
			e.requireNoRun(t, name)
		})
	}
	require.Empty(t, e.sim.Ledger())
}

// closedAddr is a local address nothing listens on.
func closedAddr() string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

// TestALocalPathNeverReachesKommo: a run that staged local files with a
// store, resumed without one, stops before sending anything: a file: URL
// is never sent.
func TestALocalPathNeverReachesKommo(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, _ := writeMediaExport(t, t.TempDir(), exportFiles, exportMsgs)
	stageOnly(t, e.importer("nostore", path, e.with(path, false, nil)))
	_, err := e.importer("nostore", path, func(c *importer.Config) { c.Open = openHosted(path, false) }).Run(context.Background(), nil)
	var need *importer.MediaNeededError
	require.ErrorAs(t, err, &need)
	require.EqualValues(t, 8, need.Messages)
	require.Empty(t, e.sim.Ledger())
}

// TestAnExpiredURLShows: a presigned URL that has expired when Kommo
// fetches it (here: made by a clock two hours slow, valid one minute) is a
// visible failure in the rehearsal, forbidden, not a silent success.
func TestAnExpiredURLShows(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	path, _ := writeMediaExport(t, t.TempDir(), exportFiles[:1], exportMsgs[:2])
	c := e.cfg
	// The preflight's probe URL is made by the right clock, the messages'
	// by one two hours slow.
	var calls atomic.Int64
	c.URLTTL, c.Now = time.Minute, func() time.Time {
		if calls.Add(1) == 1 {
			return time.Now()
		}
		return time.Now().Add(-2 * time.Hour)
	}
	slow := e.open(t, c)
	sum := e.run("expired", path, func(cfg *importer.Config) { cfg.Media, cfg.Open = slow, openHosted(path, false) })
	require.Equal(t, importer.OutcomeDone, sum.Outcome, "the API accepts the message; the fetch fails later, as in Kommo")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.sim.WaitMedia(ctx))
	require.Equal(t, map[string]int64{sim.MediaForbidden: 1}, e.sim.Stats().MediaFailed)
}

// TestMediaBaseURL: with --media-base-url nothing is uploaded: a file goes
// out as BASE/<its path under the export>, once its URL has answered with
// its size; a file the server does not publish fails its message with the
// reason (never a silent send), and a base URL that publishes nothing stops
// the run after staging, before any send.
func TestMediaBaseURL(t *testing.T) {
	t.Parallel()
	e := newMediaEnv(t, sim.Options{})
	dir := t.TempDir()
	path, _ := writeMediaExport(t, dir, exportFiles, exportMsgs)
	var mu sync.Mutex
	hidden := map[string]bool{"/export/files/invoice 1842.pdf": true}
	files := http.StripPrefix("/export", http.FileServer(http.Dir(dir)))
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hide := hidden[r.URL.Path]
		mu.Unlock()
		if hide || !strings.HasPrefix(r.URL.Path, "/export/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	defer web.Close()
	open := func(base string) *media.Store {
		return e.open(t, media.Config{BaseURL: base, Root: dir})
	}
	webCfg := func(st *media.Store) func(*importer.Config) {
		return func(c *importer.Config) { c.Media, c.MediaWeb, c.Open = st, true, openHosted(path, false) }
	}

	_, err := e.importer("wrong-base", path, webCfg(open(web.URL+"/elsewhere"))).Run(context.Background(), nil)
	var me *importer.MediaError
	require.ErrorAs(t, err, &me)
	require.True(t, me.Preflight && me.Refused(), "%v", err)
	require.Contains(t, err.Error(), web.URL+"/elsewhere")
	require.Empty(t, e.sim.Ledger(), "nothing sent")

	sum := e.run("web", path, webCfg(open(web.URL+"/export")))
	require.Equal(t, importer.OutcomeIncomplete, sum.Outcome)
	require.EqualValues(t, 1, sum.Media.Failed)
	require.Zero(t, e.tr.puts.Load())
	var reasons []string
	require.NoError(t, importer.EachFailed(context.Background(), e.pool, "web", func(m *importer.FailedMessage) error {
		reasons = append(reasons, m.LastError)
		return nil
	}))
	require.Len(t, reasons, 1)
	require.Contains(t, reasons[0], "404")
	require.Contains(t, reasons[0], "invoice%201842.pdf")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.sim.WaitMedia(ctx))
	require.Empty(t, e.sim.Stats().MediaFailed)
	for _, le := range e.sim.Ledger() {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(le.Payload, &p))
		if p.Message.Media != "" {
			require.True(t, strings.HasPrefix(p.Message.Media, web.URL+"/export/"), p.Message.Media)
			require.True(t, le.Media.OK)
		}
	}

	// Published, retried: sent.
	mu.Lock()
	delete(hidden, "/export/files/invoice 1842.pdf")
	mu.Unlock()
	_, err = importer.ResetFailed(context.Background(), e.pool, "web", importer.Selection{})
	require.NoError(t, err)
	sum = e.run("web", path, webCfg(open(web.URL+"/export")))
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.NoError(t, e.sim.WaitMedia(ctx))
	require.EqualValues(t, 8, e.sim.Stats().MediaFetched)
	require.Equal(t, &importer.MediaStatus{Messages: 8, SentAsMedia: 8, Files: 6, Reused: 6, Bytes: 1_878_000}, sum.Media)
}
