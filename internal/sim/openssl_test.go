package sim

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// opensslDigest runs `openssl dgst` over data and returns the lowercase hex digest.
func opensslDigest(t *testing.T, data []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("openssl", append([]string{"dgst"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	require.NoError(t, err, "openssl dgst %v", args)
	// "MD5(stdin)= 9e10..." or "SHA1(stdin)= ..."; the digest is the last field.
	f := strings.Fields(string(out))
	require.NotEmpty(t, f)
	return f[len(f)-1]
}

// TestOpenSSLSignedRequest signs a request with an independent
// implementation (the openssl CLI, not package signer), so the simulator's
// verification cannot share a bug with the signer it is meant to referee.
func TestOpenSSLSignedRequest(t *testing.T) {
	e := newEnv(t, Options{})
	body := []byte(`{"event_type":"new_message","payload":{"timestamp":1639604761,"msec_timestamp":1639604761694,"msgid":"my_int-5f2836a8ca476","conversation_id":"my_int-d5a421f7f217","sender":{"id":"my_int-1376265f-86df-4c49-a0c3-a4816df41af8","name":"Вася"},"message":{"type":"text","text":"Привет"},"silent":false}}`)
	date := time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")

	md5hex := opensslDigest(t, body, "-md5")
	toSign := strings.Join([]string{"POST", md5hex, "application/json", date, sendPath}, "\n")
	sig := opensslDigest(t, []byte(toSign), "-sha1", "-hmac", testSecret.Reveal())

	send := func(b []byte) (int, string) {
		req, err := http.NewRequest(http.MethodPost, e.ts.URL+sendPath, bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Date", date)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-MD5", md5hex)
		req.Header.Set("X-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(got)
	}

	status, got := send(body)
	require.Equal(t, http.StatusOK, status, "body: %s", got)
	require.Contains(t, got, `"ref_id":"my_int-5f2836a8ca476"`)

	tampered := bytes.Clone(body)
	i := bytes.Index(tampered, []byte(`"silent":false`)) + len(`"silent":`)
	tampered[i] = 'F' // one byte: still the same length, no longer the signed bytes
	status, got = send(tampered)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, sigRefusal, got)
	require.Len(t, e.sim.Ledger(), 1)
}
