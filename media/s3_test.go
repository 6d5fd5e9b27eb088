package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/stretchr/testify/require"
)

// TestPutStoresOnce: the same content is stored once under its content
// address; a second Put, a second Store (another process) and a copy under
// another folder HEAD it and upload nothing; another name is another key.
func TestPutStoresOnce(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, bucket := storeConfig(t, srv, "chats/2024")
	cnt := newCounter()
	cfg.HTTPClient = &http.Client{Transport: cnt}
	s := open(t, cfg)
	ctx := context.Background()
	dir := t.TempDir()
	path := writeMedia(t, dir, "IMG 2041.jpg", 300_000, 1)
	sum := sha256.Sum256(mustRead(t, path))
	hexSum := hex.EncodeToString(sum[:])

	obj, err := s.Put(ctx, path)
	require.NoError(t, err)
	require.Equal(t, Object{Key: "chats/2024/sha256/" + hexSum + "/IMG 2041.jpg", Size: 300_000, SHA256: hexSum, Uploaded: true}, obj)
	require.Equal(t, map[string]int{"HEAD": 1, "PUT": 1}, cnt.take())
	obj.Uploaded = false // what every later Put finds

	again, err := s.Put(ctx, path)
	require.NoError(t, err)
	require.Equal(t, obj, again)
	require.Equal(t, map[string]int{"HEAD": 1}, cnt.take(), "a second Put only looks")

	other := open(t, cfg) // another process
	copyPath := filepath.Join(dir, "backup", "IMG 2041.jpg")
	require.NoError(t, os.MkdirAll(filepath.Dir(copyPath), 0o755))
	require.NoError(t, os.WriteFile(copyPath, mustRead(t, path), 0o644))
	fromOther, err := other.Put(ctx, copyPath)
	require.NoError(t, err)
	require.Equal(t, obj, fromOther)
	require.Equal(t, map[string]int{"HEAD": 1}, cnt.take())

	renamed := filepath.Join(dir, "renamed.jpg")
	require.NoError(t, os.WriteFile(renamed, mustRead(t, path), 0o644))
	robj, err := s.Put(ctx, renamed)
	require.NoError(t, err)
	require.Equal(t, "chats/2024/sha256/"+hexSum+"/renamed.jpg", robj.Key)

	require.Equal(t, []string{obj.Key, robj.Key}, srv.Keys(t, bucket))
	got, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(obj.Key)})
	require.NoError(t, err)
	defer got.Body.Close()
	body, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	require.Equal(t, mustRead(t, path), body)
	require.Equal(t, "image/jpeg", aws.ToString(got.ContentType))
}

// TestPutConcurrently: many Puts of the same files at once, from two
// Stores, end with one object per file and the right bytes; the Store
// never runs more than Concurrency Puts at once.
func TestPutConcurrently(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, bucket := storeConfig(t, srv, "")
	cfg.Concurrency = 2
	a, b := open(t, cfg), open(t, cfg)
	dir := t.TempDir()
	var paths []string
	for i := range 6 {
		paths = append(paths, writeMedia(t, dir, "f"+string(rune('a'+i))+".bin", 20_000+i, byte(i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Go(func() {
			s := a
			if i%2 == 1 {
				s = b
			}
			_, err := s.Put(context.Background(), paths[i%len(paths)])
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, srv.Keys(t, bucket), len(paths))
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

// TestPresignedURL: the URL made at send time downloads the file with a
// plain HTTP client, no credentials; one made too long ago is refused.
func TestPresignedURL(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, _ := storeConfig(t, srv, "p")
	s := open(t, cfg)
	ctx := context.Background()
	path := writeMedia(t, t.TempDir(), "чек 4411.pdf", 12_345, 3)
	obj, err := s.Put(ctx, path)
	require.NoError(t, err)

	u, err := s.URL(ctx, obj)
	require.NoError(t, err)
	require.Contains(t, u, "X-Amz-Expires=86400", "default TTL 24 h")
	require.NotContains(t, u, srv.SecretKey)
	resp, err := http.Get(u)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, mustRead(t, path), body)

	// Presigned two hours ago, valid for one.
	cfg.URLTTL = time.Hour
	cfg.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	old := open(t, cfg)
	u, err = old.URL(ctx, obj)
	require.NoError(t, err)
	require.Contains(t, u, "X-Amz-Expires=3600")
	resp, err = http.Get(u)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "an expired URL: %s", body)
}

// TestProbe: the preflight passes against a good store, and fails within
// seconds with a Permanent *Error naming the store for each thing that can
// be wrong with it.
func TestProbe(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	good, bucket := storeConfig(t, srv, "probe")
	require.NoError(t, open(t, good).Probe(context.Background(), ""))
	require.Empty(t, srv.Keys(t, bucket), "the probe object is deleted")

	closed := closedPort(t)
	notS3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><body>Not Found</body></html>")
	}))
	t.Cleanup(notS3.Close)

	cases := []struct {
		name   string
		mutate func(t *testing.T, c *Config)
		status int
		code   string
		say    string
	}{
		{name: "wrong secret", mutate: func(t *testing.T, c *Config) {
			c.SharedConfigFiles[0], c.SharedCredentialsFiles[0] = s3test.Profile(t, "kommo-test", srv.AccessKey, "not-the-secret")
		}, status: 403, code: "SignatureDoesNotMatch", say: "check the credentials"},
		{name: "unknown access key", mutate: func(t *testing.T, c *Config) {
			c.SharedConfigFiles[0], c.SharedCredentialsFiles[0] = s3test.Profile(t, "kommo-test", "AKNOBODY", srv.SecretKey)
		}, status: 403, code: "InvalidAccessKeyId", say: "check the credentials"},
		{name: "read-only credentials", mutate: func(t *testing.T, c *Config) {
			c.SharedConfigFiles[0], c.SharedCredentialsFiles[0] = s3test.Profile(t, "kommo-test", srv.ReadOnlyAccessKey, srv.ReadOnlySecretKey)
		}, status: 403, code: "AccessDenied", say: "s3:PutObject"},
		{name: "no such bucket", mutate: func(t *testing.T, c *Config) { c.Store = "s3://kt-no-such-bucket-here/x" },
			status: 404, code: "NoSuchBucket", say: "the bucket does not exist"},
		{name: "no such profile", mutate: func(t *testing.T, c *Config) { c.Profile = "nobody" }, say: "nobody"},
		{name: "nothing listening", mutate: func(t *testing.T, c *Config) { c.Endpoint = "http://" + closed },
			say: "connection refused"},
		{name: "not an S3 API", mutate: func(t *testing.T, c *Config) { c.Endpoint = notS3.URL },
			status: 404, say: "is this an S3 API? (check --media-endpoint)"},
		{name: "public base that is not public", mutate: func(t *testing.T, c *Config) { c.PublicBase = srv.Endpoint + "/" + bucket },
			status: 403, say: "is not public"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good
			c.SharedConfigFiles = append([]string(nil), good.SharedConfigFiles...)
			c.SharedCredentialsFiles = append([]string(nil), good.SharedCredentialsFiles...)
			tc.mutate(t, &c)
			start := time.Now()
			s, err := Open(context.Background(), c)
			if err == nil {
				err = s.Probe(context.Background(), "")
			}
			took := time.Since(start)
			var me *Error
			require.ErrorAs(t, err, &me)
			require.Equal(t, Permanent, me.Kind, "%v", err)
			require.False(t, me.Retryable())
			require.Equal(t, tc.status, me.Status, "%v", err)
			require.Equal(t, tc.code, me.Code, "%v", err)
			require.Equal(t, tc.name == "nothing listening", me.NoAnswer(), "%v", err)
			require.Contains(t, err.Error(), tc.say)
			if c.PublicBase != "" {
				require.Contains(t, err.Error(), "media public base "+c.PublicBase)
			} else {
				require.Contains(t, err.Error(), "media store "+c.Store)
			}
			require.NotContains(t, err.Error(), srv.SecretKey)
			require.Less(t, took, 10*time.Second, "a preflight fails in seconds")
			t.Logf("%s: %v (%s)", tc.name, err, took.Round(time.Millisecond))
		})
	}
}

// TestPutErrors: a Put's failures are classified for the caller: bad
// credentials stop the run (Permanent), a server that is away is retried
// (Transient), a bad file is a *FileError.
func TestPutErrors(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	good, _ := storeConfig(t, srv, "")
	dir := t.TempDir()
	path := writeMedia(t, dir, "a.jpg", 1000, 9)

	bad := good
	conf, creds := s3test.Profile(t, "kommo-test", srv.AccessKey, "wrong")
	bad.SharedConfigFiles, bad.SharedCredentialsFiles = []string{conf}, []string{creds}
	_, err := open(t, bad).Put(context.Background(), path)
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind, "%v", err)

	away := good
	away.Endpoint = "http://" + closedPort(t)
	_, err = open(t, away).Put(context.Background(), path)
	require.ErrorAs(t, err, &me)
	require.Equal(t, Transient, me.Kind, "%v", err)
	require.True(t, me.Retryable())

	s := open(t, Config{Store: good.Store, Endpoint: good.Endpoint, Profile: good.Profile,
		SharedConfigFiles: good.SharedConfigFiles, SharedCredentialsFiles: good.SharedCredentialsFiles, MaxSize: 2000})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "empty.jpg"), nil, 0o644))
	writeMedia(t, dir, "big.mp4", 2001, 1)
	for name, reason := range map[string]error{"missing.jpg": ErrMissing, "empty.jpg": ErrEmpty, "big.mp4": ErrTooLarge, ".": ErrNotRegular} {
		_, err := s.Put(context.Background(), filepath.Join(dir, name))
		var fe *FileError
		require.ErrorAs(t, err, &fe, name)
		require.ErrorIs(t, err, reason, name)
	}
	_, err = s.Put(context.Background(), filepath.Join(dir, "big.mp4"))
	require.ErrorContains(t, err, "2001 bytes (2 KiB), over the limit of 2000 (2 KiB, --media-max-size)")
}

// TestEnvironmentCredentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
// are used as the AWS tools use them, with no profile named.
func TestEnvironmentCredentials(t *testing.T) {
	srv := s3test.Get(t)
	bucket := srv.Bucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	s := open(t, Config{Store: "s3://" + bucket + "/env", Endpoint: srv.Endpoint})
	require.NoError(t, s.Probe(context.Background(), ""))
	obj, err := s.Put(context.Background(), writeMedia(t, t.TempDir(), "v.ogg", 500, 4))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(obj.Key, "env/sha256/"))

	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	err = open(t, Config{Store: "s3://" + bucket, Endpoint: srv.Endpoint}).Probe(context.Background(), "")
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind)
	require.ErrorIs(t, err, ErrNoCredentials)
	require.Contains(t, err.Error(), "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
}

// TestPublicBase: with --media-public-base the URL is the base and the key,
// and the probe downloads through it: here a stand-in for a CDN in front of
// the bucket.
func TestPublicBase(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, bucket := storeConfig(t, srv, "pub")
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/media/")
		out, err := srv.Client().GetObject(r.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer out.Body.Close()
		io.Copy(w, out.Body)
	}))
	t.Cleanup(cdn.Close)
	cfg.PublicBase = cdn.URL + "/media/"
	s := open(t, cfg)
	require.NoError(t, s.Probe(context.Background(), ""))
	obj, err := s.Put(context.Background(), writeMedia(t, t.TempDir(), "a b#1.png", 777, 5))
	require.NoError(t, err)
	u, err := s.URL(context.Background(), obj)
	require.NoError(t, err)
	require.Equal(t, cdn.URL+"/media/pub/sha256/"+obj.SHA256+"/a%20b%231.png", u)
	resp, err := http.Get(u)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 777, len(body))
}

// closedPort is an address on this machine where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestPutSignsTheContentHash: the upload is signed with the hash Put
// computed, and the server checks the body against it: a file that changed
// between hashing and upload is refused, never stored under a wrong address.
func TestPutSignsTheContentHash(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, bucket := storeConfig(t, srv, "")
	s := open(t, cfg)
	body := []byte("the file as it is now")
	before := sha256.Sum256([]byte("the file as it was when hashed"))
	wrong := hex.EncodeToString(before[:])
	_, err := s.s3.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("sha256/" + wrong + "/f.txt"),
		Body: strings.NewReader(string(body)), ContentLength: aws.Int64(int64(len(body))),
		ChecksumSHA256: aws.String(base64SHA(wrong)),
	}, s3.WithAPIOptions(payloadHash(wrong)))
	var me *Error
	require.ErrorAs(t, classify(err, "put", "w", "k"), &me)
	require.Equal(t, "XAmzContentSHA256Mismatch", me.Code)
	require.Equal(t, Transient, me.Kind, "the next Put hashes the file anew")
	require.Empty(t, srv.Keys(t, bucket))
}

// TestProbeHangingEndpoint: an endpoint that accepts connections and never
// answers stops the preflight at ProbeTimeout, not at the HTTP client's
// minute.
func TestProbeHangingEndpoint(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, _ := storeConfig(t, srv, "")
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hang.Close() })
	cfg.Endpoint, cfg.ProbeTimeout = hang.URL, time.Second
	start := time.Now()
	err := open(t, cfg).Probe(context.Background(), "")
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind)
	require.True(t, me.NoAnswer())
	require.Contains(t, err.Error(), "no answer within 1s")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestPutNeverOverwrites: an object already under a file's content address
// with another size (someone else's, a damaged copy) is left as it is: the
// Put fails, naming the key, and the object keeps its bytes.
func TestPutNeverOverwrites(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, bucket := storeConfig(t, srv, "keep")
	path := writeMedia(t, t.TempDir(), "a.jpg", 5000, 7)
	sum := sha256.Sum256(mustRead(t, path))
	key := "keep/sha256/" + hex.EncodeToString(sum[:]) + "/a.jpg"
	_, err := srv.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: strings.NewReader("not the file")})
	require.NoError(t, err)

	_, err = open(t, cfg).Put(context.Background(), path)
	var me *Error
	require.ErrorAs(t, err, &me)
	require.Equal(t, Permanent, me.Kind)
	require.ErrorIs(t, err, ErrSizeMismatch)
	require.Contains(t, err.Error(), key+": size mismatch: the object holds 12 bytes, its content address says 5000; it is left as it is")
	out, err := srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	require.NoError(t, err)
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	require.Equal(t, "not the file", string(body))
}
