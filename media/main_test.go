package media

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/stretchr/testify/require"
)

// TestMain keeps the tests away from the machine's own AWS setup: no
// credentials from the environment or ~/.aws (each test names its own), and
// never the instance metadata service, which is not on this machine.
func TestMain(m *testing.M) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"} {
		os.Unsetenv(k)
	}
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(os.TempDir(), "kommo-import-media-test-no-aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(os.TempDir(), "kommo-import-media-test-no-aws-credentials"))
	os.Exit(m.Run())
}

// counter counts the requests a Store makes, by method.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.RoundTripper
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.counts[r.Method]++
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

func newCounter() *counter {
	return &counter{counts: map[string]int{}, next: http.DefaultTransport}
}

// storeConfig is a Config for a fresh bucket on the test server, with its
// full credentials in a profile of its own.
func storeConfig(t *testing.T, srv s3test.Server, prefix string) (Config, string) {
	t.Helper()
	bucket := srv.Bucket(t)
	conf, creds := s3test.Profile(t, "kommo-test", srv.AccessKey, srv.SecretKey)
	store := "s3://" + bucket
	if prefix != "" {
		store += "/" + prefix
	}
	return Config{
		Store: store, Endpoint: srv.Endpoint, Region: srv.Region,
		Profile: "kommo-test", SharedConfigFiles: []string{conf}, SharedCredentialsFiles: []string{creds},
	}, bucket
}

func open(t testing.TB, c Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), c)
	require.NoError(t, err)
	return s
}

// writeMedia writes a file of n pseudo-random bytes (seeded) and returns its path.
func writeMedia(t testing.TB, dir, name string, n int, seed byte) string {
	t.Helper()
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}
