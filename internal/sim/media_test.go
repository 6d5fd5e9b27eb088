package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/kommo-import/kommo-import/media"
	"github.com/stretchr/testify/require"
)

func mediaPayload(msgid, typ, url string, size int64) []byte {
	p := payload(msgid, "conv-media", 1714979289000, true)
	msg := map[string]any{"type": typ, "media": url, "file_name": "f-" + msgid}
	if size >= 0 {
		msg["file_size"] = size
	}
	p["message"] = msg
	return event(p)
}

// TestMediaFetchPresigned: the simulator downloads what the importer would
// send from a real S3-compatible store: a presigned URL made now arrives
// whole; one that has expired, one with a wrong file_size, a deleted object,
// a file: URL and a server that does not answer in time are failures
// counted by reason, in the stats, the ledger entries and the media ledger.
func TestMediaFetchPresigned(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	bucket := srv.Bucket(t)
	conf, creds := s3test.Profile(t, "sim", srv.AccessKey, srv.SecretKey)
	cfg := media.Config{Store: "s3://" + bucket + "/sim", Endpoint: srv.Endpoint, Region: srv.Region, Profile: "sim",
		SharedConfigFiles: []string{conf}, SharedCredentialsFiles: []string{creds}}
	store, err := media.Open(context.Background(), cfg)
	require.NoError(t, err)
	cfg.URLTTL, cfg.Now = time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) }
	stale, err := media.Open(context.Background(), cfg)
	require.NoError(t, err)

	dir := t.TempDir()
	put := func(name string, size int) media.Object {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte{byte(size)}, size), 0o644))
		obj, err := store.Put(context.Background(), p)
		require.NoError(t, err)
		return obj
	}
	photo, voice, gone := put("photo.jpg", 150_000), put("voice.ogg", 9_000), put("gone.pdf", 100)
	url := func(s *media.Store, o media.Object) string {
		u, err := s.URL(context.Background(), o)
		require.NoError(t, err)
		return u
	}
	photoURL, voiceURL, expiredURL, goneURL := url(store, photo), url(store, voice), url(stale, photo), url(store, gone)
	c := srv.Client()
	_, err = c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(gone.Key)})
	require.NoError(t, err)

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)

	mediaLedger := &syncBuffer{b: &bytes.Buffer{}}
	e := newEnv(t, Options{MediaFetch: &MediaFetch{Timeout: 500 * time.Millisecond, Ledger: mediaLedger}})
	sends := []struct {
		msgid, typ, url string
		size            int64
		want            string // "" fetched, "skipped", or the failure reason
	}{
		{"ok-photo", "picture", photoURL, photo.Size, ""},
		{"ok-voice", "voice", voiceURL, -1, ""}, // no file_size: any size will do
		{"expired", "picture", expiredURL, photo.Size, MediaForbidden},
		{"wrong-size", "file", photoURL, photo.Size + 1, MediaSizeMismatch},
		{"deleted", "file", goneURL, gone.Size, MediaNotFound},
		{"local", "video", "file:///data/export/v.mp4", 10, MediaNotHTTP},
		{"slow", "audio", slow.URL + "/a.mp3", -1, MediaTimeout},
		{"sample", "picture", "https://files.example.com/p/IMG_2041.jpg", 482113, "skipped"},
	}
	for _, s := range sends {
		resp, body := e.send(mediaPayload(s.msgid, s.typ, s.url, s.size))
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", s.msgid, body)
	}
	resp, _ := e.send(msgBody("text-1", "conv-media", 1714979290000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.sim.WaitMedia(ctx))

	st := e.sim.Stats()
	require.Equal(t, int64(2), st.MediaFetched)
	require.Equal(t, photo.Size+voice.Size, st.MediaBytes)
	require.Equal(t, map[string]int64{MediaForbidden: 1, MediaSizeMismatch: 1, MediaNotFound: 1, MediaNotHTTP: 1, MediaTimeout: 1}, st.MediaFailed)
	require.Equal(t, int64(1), st.MediaSkipped)
	require.Zero(t, st.MediaPending)

	byID := map[string]*MediaResult{}
	for _, le := range e.sim.Ledger() {
		byID[le.MsgID] = le.Media
	}
	require.Nil(t, byID["text-1"], "a text message has no media to fetch")
	for _, s := range sends {
		r := byID[s.msgid]
		require.NotNil(t, r, s.msgid)
		switch s.want {
		case "":
			require.True(t, r.OK, "%s: %+v", s.msgid, r)
		case "skipped":
			require.True(t, r.Skipped, s.msgid)
		default:
			require.False(t, r.OK, s.msgid)
			require.Equal(t, s.want, r.Reason, "%s: %+v", s.msgid, r)
		}
		require.NotContains(t, r.URL, "X-Amz-Signature", "the query of a presigned URL stays out of the media ledger")
	}
	require.Equal(t, 403, byID["expired"].Status)
	require.Contains(t, byID["expired"].Detail, "403 Forbidden: AccessDenied")
	require.Contains(t, byID["wrong-size"].Detail, "150000 bytes, message.file_size says 150001")

	lines := strings.Split(strings.TrimSpace(mediaLedger.b.String()), "\n")
	require.Len(t, lines, len(sends))
	for _, l := range lines {
		var r MediaResult
		require.NoError(t, json.Unmarshal([]byte(l), &r))
		require.NotZero(t, r.Seq)
	}
}

// TestMediaFetchLimits: a file over MaxSize fails as too_large; without
// MediaFetch nothing is downloaded at all.
func TestMediaFetchLimits(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(make([]byte, 5000))
	}))
	t.Cleanup(files.Close)

	e := newEnv(t, Options{MediaFetch: &MediaFetch{MaxSize: 4096}})
	resp, body := e.send(mediaPayload("big", "file", files.URL+"/big.bin", 5000))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, e.sim.WaitMedia(context.Background()))
	require.Equal(t, map[string]int64{MediaTooLarge: 1}, e.sim.Stats().MediaFailed)

	off := newEnv(t, Options{})
	resp, body = off.send(mediaPayload("not-fetched", "file", files.URL+"/x.bin", 5000))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.NoError(t, off.sim.WaitMedia(context.Background()))
	require.Equal(t, int64(1), hits.Load(), "--media-fetch off downloads nothing")
	require.Zero(t, off.sim.Stats().MediaFetched)
	require.Empty(t, off.sim.Stats().MediaFailed)
}

func TestReservedHost(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]bool{
		"example.com": true, "files.example.com": true, "cdn.example.org.": true, "a.test": true, "x.invalid": true,
		"example.com.evil.io": false, "notexample.com": false, "127.0.0.1": false, "s3.amazonaws.com": false,
	} {
		require.Equal(t, want, reservedHost(h), h)
	}
}

// syncBuffer is a bytes.Buffer safe for the fetcher's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
