package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
)

func TestEndpointOf(t *testing.T) {
	tests := []struct {
		method, path, want string
	}{
		{http.MethodPost, "/v2/origin/custom/scope_1", "send_message"},
		{http.MethodPost, "/v2/origin/custom/scope_1/chats", "create_chat"},
		{http.MethodGet, "/v2/origin/custom/scope_1/chats/8e3e7640-49af/history", "history"},
		{http.MethodPost, "/v2/origin/custom/chan-1/connect", "connect"},
		{http.MethodGet, "/v2/origin/custom/scope_1", "other"},
		{http.MethodGet, "/metrics", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			require.Equal(t, tt.want, endpointOf(r))
		})
	}
}

// metricValue returns the value of the series name{labels...} in a scrape,
// and whether it is there.
func metricValue(scrape, name string, labels ...string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(scrape, -1) {
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(m[1], l)
		}
		if ok {
			v, err := strconv.ParseFloat(m[2], 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestObservedTransportCountsByEndpointAndCode(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/history") {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer api.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	m := newMetrics("r1")
	hc := m.httpClient()
	do := func(method, url string) {
		req, err := http.NewRequest(method, url, nil)
		require.NoError(t, err)
		resp, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	do(http.MethodPost, api.URL+"/v2/origin/custom/s")
	do(http.MethodPost, api.URL+"/v2/origin/custom/s")
	do(http.MethodGet, api.URL+"/v2/origin/custom/s/chats/c/history")
	do(http.MethodPost, gone.URL+"/v2/origin/custom/s")

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	scrape := rec.Body.String()
	for _, tt := range []struct {
		endpoint, code string
		want           float64
	}{{"send_message", "200", 2}, {"history", "429", 1}, {"send_message", "error", 1}} {
		v, ok := metricValue(scrape, "kommo_import_http_requests_total", `endpoint="`+tt.endpoint+`"`, `code="`+tt.code+`"`, `run="r1"`)
		require.True(t, ok, "%s %s in:\n%s", tt.endpoint, tt.code, scrape)
		require.Equal(t, tt.want, v, "%s %s", tt.endpoint, tt.code)
	}
	v, ok := metricValue(scrape, "kommo_import_http_request_duration_seconds_count", `endpoint="send_message"`)
	require.True(t, ok)
	require.Equal(t, 3.0, v)
	v, ok = metricValue(scrape, "kommo_import_http_requests_in_flight")
	require.True(t, ok)
	require.Zero(t, v)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

type cmdResult struct {
	stdout, stderr string
	code           int
}

// start runs a command in the background.
func (c *cliEnv) start(args ...string) <-chan cmdResult {
	done := make(chan cmdResult, 1)
	go func() {
		var out, errOut bytes.Buffer
		env := Env{Getenv: func(k string) string { return c.vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
		err := Run(context.Background(), args, env, nil)
		code := ExitCode(err, &errOut)
		done <- cmdResult{out.String(), errOut.String(), code}
	}()
	return done
}

func TestMetricsServedDuringARun(t *testing.T) {
	old := statesRefresh
	statesRefresh = 50 * time.Millisecond
	t.Cleanup(func() { statesRefresh = old })

	// A slow simulator keeps the run going while /metrics is scraped.
	c := newFrontedEnv(t, sim.Options{Latency: 80 * time.Millisecond})
	addr := freeAddr(t)
	done := c.start("run", "--run", "m1", "--source", sampleJSONL, "--rate", "50", "--workers", "1",
		"--progress", "none", "--metrics-addr", addr)

	var scrape string
	deadline := time.Now().Add(time.Minute)
	for {
		require.True(t, time.Now().Before(deadline), "no scrape showed the run sending; last:\n%s", scrape)
		select {
		case res := <-done:
			t.Fatalf("the run ended before a scrape saw it sending (code %d): %s\nlast scrape:\n%s", res.code, res.stderr, scrape)
		default:
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			scrape = string(b)
			sent, _ := metricValue(scrape, "kommo_import_http_requests_total", `endpoint="send_message"`, `code="200"`)
			dbSent, _ := metricValue(scrape, "kommo_import_messages", `state="sent"`)
			pending, _ := metricValue(scrape, "kommo_import_messages", `state="pending"`)
			if sent >= 2 && dbSent >= 1 && pending >= 1 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Mid-run, the scrape has every family the dashboards use.
	for _, s := range []struct {
		name   string
		labels []string
	}{
		{"kommo_import_messages", []string{`state="failed"`, `run="m1"`}},
		{"kommo_import_http_request_duration_seconds_bucket", []string{`endpoint="send_message"`, `le="0.1"`}},
		{"kommo_import_http_requests_in_flight", nil},
		{"kommo_import_rate_limit_requests_per_second", []string{`run="m1"`}},
		{"kommo_import_rate_limit_paused", nil},
		{"kommo_import_rate_limit_paused_until_seconds", nil},
		{"kommo_import_rate_limit_wait_seconds_total", nil},
		{"kommo_import_rate_limit_requests_total", nil},
		{"kommo_import_process_sent_total", nil},
		{"kommo_import_progress_total", nil},
		{"go_goroutines", nil},
	} {
		_, ok := metricValue(scrape, s.name, s.labels...)
		require.True(t, ok, "%s%v missing from:\n%s", s.name, s.labels, scrape)
	}
	rate, _ := metricValue(scrape, "kommo_import_rate_limit_requests_per_second")
	require.Equal(t, 50.0, rate)
	total, _ := metricValue(scrape, "kommo_import_progress_total")
	require.Equal(t, 14.0, total)
	require.NotContains(t, scrape, cliSecret)

	res := <-done
	require.Equal(t, ExitOK, res.code, res.stderr)
	require.Len(t, c.sim.Ledger(), 14)
	require.Contains(t, res.stderr, "serving metrics")
	_, err := http.Get("http://" + addr + "/metrics")
	require.Error(t, err, "the metrics server stops with the command")
}

func TestMetricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--metrics-addr", ln.Addr().String())
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, fmt.Sprintf("--metrics-addr: listen tcp %s", ln.Addr()))
	require.Empty(t, c.sim.Ledger(), "nothing is sent without the metrics the operator asked for")
}
