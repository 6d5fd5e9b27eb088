package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/signer"
)

const (
	testScope  = "chan-1_acct-1"
	testSecret = signer.Secret("rehearsal-secret-value")
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunUsageErrors(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	full := map[string]string{EnvSecret: testSecret.Reveal()}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no secret", []string{"--scope-id", testScope, "--ledger", ledger}, nil, "KOMMO_CHANNEL_SECRET"},
		{"no scope", []string{"--ledger", ledger}, full, "--scope-id is required"},
		{"no ledger", []string{"--scope-id", testScope}, full, "--ledger is required"},
		{"bad faults", []string{"--scope-id", testScope, "--ledger", ledger, "--faults", "500=2"}, full, "--faults"},
		{"bad flag", []string{"--nope"}, full, "not defined"},
		{"stray argument", []string{"--scope-id", testScope, "--ledger", ledger, "extra"}, full, "unexpected arguments"},
		{"bad media fetch", []string{"--scope-id", testScope, "--ledger", ledger, "--media-fetch", "yes"}, full, `--media-fetch "yes": want on or off`},
		{"bad media bounds", []string{"--scope-id", testScope, "--ledger", ledger, "--media-concurrency", "0"}, full, "--media-concurrency 1 to 256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, env(tc.env), &stdout, &stderr)
			require.ErrorIs(t, err, errUsage)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error()+stderr.String(), testSecret.Reveal())
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, env(nil), &stdout, &stderr))
	for _, want := range []string{"Chats API", "KOMMO_CHANNEL_SECRET", "KOMMO_API_URL", "KOMMO_SCOPE_ID", "--api-url",
		"accept-drop", "accept-500", "hang", "/_sim/stats", "-ledger", "-faults",
		"-media-fetch", "media_fetched", "media_failed", "size_mismatch", "-media-ledger"} {
		require.Contains(t, stderr.String(), want)
	}
}

// TestRunServes drives run in-process: it listens on a free port, writes the
// URL to --addr-file, serves signed requests, appends to the ledger and
// prints the final stats when its context ends.
func TestRunServes(t *testing.T) {
	dir := t.TempDir()
	addrFile, ledger := filepath.Join(dir, "addr"), filepath.Join(dir, "ledger.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--scope-id", testScope,
			"--ledger", ledger, "--rate", "0", "--faults", "hang=1", "--hang", "1h"}, env(map[string]string{EnvSecret: testSecret.Reveal()}), &stdout, &stderr)
	}()
	url := waitAddr(t, addrFile, done)
	require.Contains(t, stderr.String(), "kommo-sim listening on "+url)

	// A request held by a hang fault must not hold up the shutdown.
	go func() {
		resp, err := http.DefaultClient.Do(signedRequest(t, url, "m-1"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "kind=hang") }, 5*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	var st sim.Stats
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &st), "stdout: %s", stdout.String())
	require.Equal(t, int64(1), st.Faults["hang"])
	require.NotContains(t, stderr.String(), testSecret.Reveal())
}

// TestRunFetchesMedia: by default the simulator downloads the media of
// accepted messages and checks their size; the results are in the final
// stats, in /_sim/ledger and in the media ledger beside --ledger.
func TestRunFetchesMedia(t *testing.T) {
	dir := t.TempDir()
	addrFile, ledger := filepath.Join(dir, "addr"), filepath.Join(dir, "ledger.jsonl")
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 2048))
	}))
	defer files.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--addr-file", addrFile, "--scope-id", testScope,
			"--ledger", ledger, "--rate", "0"}, env(map[string]string{EnvSecret: testSecret.Reveal()}), &stdout, &stderr)
	}()
	url := waitAddr(t, addrFile, done)
	require.Contains(t, stderr.String(), "media fetch on, ledger "+filepath.Join(dir, "ledger.media.jsonl"))
	for id, size := range map[string]int{"right": 2048, "wrong": 2049} {
		msg := fmt.Sprintf(`{"type":"picture","media":%q,"file_name":"a.jpg","file_size":%d}`, files.URL+"/a.jpg?sig=secret", size)
		resp, err := http.DefaultClient.Do(signedMessage(t, url, id, msg))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/_sim/ledger")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var entries []sim.LedgerEntry
		return json.NewDecoder(resp.Body).Decode(&entries) == nil && len(entries) == 2 && entries[0].Media != nil && entries[1].Media != nil
	}, 10*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	var st sim.Stats
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &st), "stdout: %s", stdout.String())
	require.Equal(t, int64(1), st.MediaFetched)
	require.Equal(t, map[string]int64{sim.MediaSizeMismatch: 1}, st.MediaFailed)
	raw, err := os.ReadFile(filepath.Join(dir, "ledger.media.jsonl"))
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(string(raw), "\n"))
	require.NotContains(t, string(raw), "sig=secret")
	require.Contains(t, stderr.String(), "media fetch failed")
}

func waitAddr(t *testing.T, path string, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("kommo-sim ended before listening: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("no --addr-file written")
	return ""
}

func signedRequest(t *testing.T, base, msgid string) *http.Request {
	t.Helper()
	return signedMessage(t, base, msgid, `{"type":"text","text":"Hello"}`)
}

func signedMessage(t *testing.T, base, msgid, message string) *http.Request {
	t.Helper()
	body := []byte(`{"event_type":"new_message","payload":{"timestamp":1639604761,"msec_timestamp":1639604761694,"msgid":"` + msgid +
		`","conversation_id":"conv-1","sender":{"id":"client-1","name":"Client"},"message":` + message + `,"silent":true}}`)
	path := "/v2/origin/custom/" + testScope
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
	require.NoError(t, err)
	signer.Sign(http.MethodPost, path, body, testSecret, time.Now()).Apply(req.Header)
	return req
}

// TestBinary builds the real binary, runs it as a process, imports a message,
// reads the ledger file while it runs and stops it with SIGTERM.
func TestBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "kommo-sim")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	addrFile, ledger := filepath.Join(dir, "addr"), filepath.Join(dir, "ledger.jsonl")
	cmd := exec.Command(bin, "--addr", "127.0.0.1:0", "--addr-file", addrFile, "--scope-id", testScope, "--ledger", ledger)
	cmd.Env = append(os.Environ(), EnvSecret+"="+testSecret.Reveal())
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	url := waitAddr(t, addrFile, exited)
	require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, url)
	require.Contains(t, stderr.String(), "kommo-sim listening on "+url)

	for _, id := range []string{"m-1", "m-2"} {
		resp, err := http.DefaultClient.Do(signedRequest(t, url, id))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
		require.Contains(t, string(b), `"ref_id":"`+id+`"`)
	}
	// A bad signature gets the documented refusal from the binary too.
	req := signedRequest(t, url, "m-3")
	req.Header.Set("X-Signature", strings.Repeat("0", 40))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, `{"status":0,"error_code":403,"error_type":"ORIGIN_INVALID_SIGNATURE","error_description":"invalid signature"}`, string(b))

	// The ledger is readable, line by line, while the simulator runs.
	raw, err := os.ReadFile(ledger)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.Len(t, lines, 2)
	for i, line := range lines {
		var e sim.LedgerEntry
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		require.Equal(t, int64(i+1), e.Seq)
		require.Equal(t, testScope, e.ScopeID)
	}

	resp, err = http.Get(url + "/_sim/stats")
	require.NoError(t, err)
	var st sim.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	require.Equal(t, int64(2), st.Accepted)
	require.Equal(t, int64(1), st.RejectedSignature)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "stderr: %s", stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("kommo-sim did not stop on SIGTERM")
	}
	require.Contains(t, stdout.String(), `"accepted": 2`)
	require.NotContains(t, stdout.String()+stderr.String(), testSecret.Reveal())
}
