package media

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// export is an export folder with a few files, one of them in a subfolder
// with a space in its name, and a file outside it.
func export(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "export")
	writeMedia(t, root, "photos/IMG 1.jpg", 4321, 1)
	writeMedia(t, root, "voice.ogg", 800, 2)
	outside = writeMedia(t, base, "secret.jpg", 10, 3)
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "link.jpg")))
	return root, outside
}

// TestBaseURL: with --media-base-url a file maps to its path under the
// export root and Put checks that the web server serves it with its size; a
// 404, another size or a refusal fails the message (Unpublished), a 5xx or
// no answer is retried (Transient).
func TestBaseURL(t *testing.T) {
	t.Parallel()
	root, outside := export(t)
	files := http.FileServer(http.Dir(root))
	var mode string // how the fake web server misbehaves
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode {
		case "stale": // an older copy of every file: 3 bytes
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.Write([]byte("old"))
			}
			return
		case "forbidden":
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case "down":
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		case "no-head": // HEAD refused: the ranged GET must do
			if r.Method == http.MethodHead {
				http.Error(w, "no HEAD here", http.StatusMethodNotAllowed)
				return
			}
		}
		http.StripPrefix("/export", files).ServeHTTP(w, r)
	}))
	t.Cleanup(web.Close)
	s := open(t, Config{BaseURL: web.URL + "/export/", Root: root})
	ctx := context.Background()
	img := filepath.Join(root, "photos", "IMG 1.jpg")

	obj, err := s.Put(ctx, img)
	require.NoError(t, err)
	require.Equal(t, Object{Key: "photos/IMG 1.jpg", Size: 4321}, obj)
	u, err := s.URL(ctx, obj)
	require.NoError(t, err)
	require.Equal(t, web.URL+"/export/photos/IMG%201.jpg", u)
	require.NoError(t, s.Probe(ctx, img))

	mode = "no-head"
	_, err = s.Put(ctx, img)
	require.NoError(t, err, "a ranged GET stands in for HEAD")

	for _, m := range []struct {
		mode   string
		kind   Kind
		status int
		is     error
		say    string
	}{
		{mode: "stale", kind: Unpublished, status: 200, is: ErrSizeMismatch, say: "it serves 3 bytes, the file has 4321"},
		{mode: "forbidden", kind: Unpublished, status: 403, say: "not published there"},
		{mode: "down", kind: Transient, status: 502, say: "the web server failed"},
	} {
		mode = m.mode
		_, err := s.Put(ctx, img)
		var me *Error
		require.ErrorAs(t, err, &me, m.mode)
		require.Equal(t, m.kind, me.Kind, m.mode)
		require.Equal(t, m.status, me.Status, m.mode)
		require.Contains(t, err.Error(), m.say, m.mode)
		require.Contains(t, err.Error(), "media URL "+u, m.mode)
		if m.is != nil {
			require.ErrorIs(t, err, m.is)
		}
		// The preflight stops the run on the same answers.
		err = s.Probe(ctx, img)
		require.ErrorAs(t, err, &me, m.mode)
		require.Equal(t, Permanent, me.Kind, m.mode)
	}
	mode = ""

	_, err = s.Put(ctx, filepath.Join(root, "photos", "nope.jpg"))
	require.ErrorIs(t, err, ErrMissing)
	for _, p := range []string{outside, filepath.Join(root, "link.jpg"), filepath.Join(root, "..", "secret.jpg")} {
		_, err = s.Put(ctx, p)
		var fe *FileError
		require.ErrorAs(t, err, &fe, p)
		require.ErrorIs(t, err, ErrOutside, p)
	}

	// Not published at all (the base URL misses /export): 404.
	wrong := open(t, Config{BaseURL: web.URL, Root: root})
	err = wrong.Probe(ctx, img)
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind)
	require.Equal(t, http.StatusNotFound, me.Status)
	require.Contains(t, err.Error(), "media URL "+web.URL+"/photos/IMG%201.jpg")
}

// TestBaseURLNothingListening: no web server at the base URL is retried in
// a Put and stops the preflight, within seconds.
func TestBaseURLNothingListening(t *testing.T) {
	t.Parallel()
	root, _ := export(t)
	s := open(t, Config{BaseURL: "http://" + closedPort(t) + "/media", Root: root})
	_, err := s.Put(context.Background(), filepath.Join(root, "voice.ogg"))
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Transient, me.Kind)
	start := time.Now()
	err = s.Probe(context.Background(), filepath.Join(root, "voice.ogg"))
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind)
	require.Contains(t, err.Error(), "connection refused")
	require.True(t, me.NoAnswer())
	require.Less(t, time.Since(start), 10*time.Second)
	require.NoError(t, s.Probe(context.Background(), ""), "no local file: nothing to check")
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Store: "s3://media-bucket/chats"}, ""},
		{Config{Store: "s3://media-bucket", Endpoint: "http://127.0.0.1:9000", URLTTL: 7 * 24 * time.Hour}, ""},
		{Config{BaseURL: "https://files.example.com/export", Root: "/x"}, ""},
		{Config{BaseURL: "http://127.0.0.1:8080/export", Root: "/x"}, ""},
		{Config{}, "neither --media-store nor --media-base-url"},
		{Config{Store: "s3://b-b-b", BaseURL: "https://x"}, "give one, not both"},
		{Config{Store: "media-bucket/x"}, "want s3://BUCKET/PREFIX"},
		{Config{Store: "s3://Media_Bucket!"}, "is not a bucket name"},
		{Config{Store: "s3://ab"}, "is not a bucket name"},
		{Config{Store: "s3://media-bucket/a//b"}, "empty segment"},
		{Config{Store: "s3://media-bucket", URLTTL: 8 * 24 * time.Hour}, "at most 168h (7 days)"},
		{Config{Store: "s3://media-bucket", URLTTL: time.Second}, "at least 1m"},
		{Config{Store: "s3://media-bucket", Endpoint: "127.0.0.1:9000"}, "want http(s)://host[:port]"},
		{Config{Store: "s3://media-bucket", Endpoint: "https://ak:sk@minio.example.com"}, "credentials do not belong in the URL"},
		{Config{Store: "s3://media-bucket", PublicBase: "http://cdn.example.com/m"}, "plain http to a host that is not this machine"},
		{Config{Store: "s3://media-bucket", PublicBase: "http://cdn.example.com/m", AllowPlainHTTP: true}, ""},
		{Config{Store: "s3://media-bucket", Concurrency: 1000}, "want 1 to 256"},
		{Config{Store: "s3://media-bucket", Addressing: "dns"}, "want path or virtual"},
		{Config{BaseURL: "https://files.example.com/export"}, "the export's folder is not known"},
		{Config{BaseURL: "https://files.example.com/export?sig=1", Root: "/x"}, "without credentials, query or fragment"},
		{Config{BaseURL: "https://files.example.com/export", Root: "/x", Endpoint: "https://s3"}, "go with --media-store"},
	} {
		err := c.cfg.Check()
		if c.want == "" {
			require.NoError(t, err, "%+v", c.cfg)
			continue
		}
		require.ErrorContains(t, err, c.want, "%+v", c.cfg)
	}
}

func TestKeyName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("я", 150) + ".jpeg"
	for in, want := range map[string]string{
		"/a/IMG 2041.jpg":      "IMG 2041.jpg",
		"/a/чек 4411.pdf":      "чек 4411.pdf",
		"/a/bad\x01name.txt":   "bad_name.txt",
		"/a/bad\xffutf8.txt":   "bad_utf8.txt",
		"/a/back\\slash.txt":   "back_slash.txt",
		"/":                    "file",
		"/a/" + long:           strings.Repeat("я", 97) + ".jpeg",
		"/a/x." + long[:300]:   "x." + strings.Repeat("я", 99),
		"/a/photo_12@2x.heic":  "photo_12@2x.heic",
		"relative/sticker.tgs": "sticker.tgs",
	} {
		got := keyName(in)
		require.Equal(t, want, got, in)
		require.LessOrEqual(t, len(got), 200)
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"file:///data/export/photos/IMG%201.jpg": "/data/export/photos/IMG 1.jpg",
		"file://localhost/data/a.jpg":            "/data/a.jpg",
		"file:///data/%D1%87%D0%B5%D0%BA.pdf":    "/data/чек.pdf",
		"https://cdn.example.com/a.jpg":          "",
		"file://fileserver/share/a.jpg":          "",
		"photos/a.jpg":                           "",
		"":                                       "",
	} {
		got, ok := LocalPath(in)
		require.Equal(t, want, got, in)
		require.Equal(t, want != "", ok, in)
	}
}

func TestFormatSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1024: "1 KiB", 1536: "1.5 KiB", 50 << 20: "50 MiB", 3 << 30: "3 GiB"} {
		require.Equal(t, want, FormatSize(n))
	}
}

func TestKinds(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		code   string
		want   Kind
	}{
		{0, "", Transient}, {500, "", Transient}, {503, "SlowDown", Transient}, {429, "", Transient},
		{400, "RequestTimeout", Transient}, {403, "RequestTimeTooSkewed", Transient}, {400, "XAmzContentSHA256Mismatch", Transient},
		{403, "AccessDenied", Permanent}, {404, "NoSuchBucket", Permanent}, {301, "PermanentRedirect", Permanent},
		{400, "AuthorizationHeaderMalformed", Permanent}, {404, "", Permanent}, {405, "", Permanent},
	} {
		require.Equal(t, c.want, kindOf(c.status, c.code), "%d %s", c.status, c.code)
	}
	err := classify(context.Canceled, "put", "w", "k")
	require.True(t, errors.Is(err, context.Canceled))
	var me *Error
	require.False(t, errors.As(err, &me), "a cancellation is the caller's, not the store's")
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"52428800": 52428800, "50MB": 50 << 20, "50 MiB": 50 << 20, "10m": 10 << 20,
		"1.5GB": 3 << 29, "512KB": 512 << 10, "100B": 100, " 16 MB ": 16 << 20} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-5MB", "50 TB", "1.5", "MB", "lots", "2000GB"} {
		_, err := ParseSize(in)
		require.ErrorContains(t, err, "want bytes, or a number with KB, MB or GB", in)
	}
}
