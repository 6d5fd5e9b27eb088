package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

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

// scrapeOf returns what m's /metrics serves.
func scrapeOf(t *testing.T, m *metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}

func TestObservedTransportCountsByEndpointAndCode(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/history") {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, `{"new_message":{"msgid":"amo-1"}}`)
	}))
	defer api.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	m := newMetrics("r1")
	client := func(url string) *chatsapi.Client {
		c, err := chatsapi.New(chatsapi.Config{BaseURL: url, ScopeID: "s", Secret: cliSecret, WrapTransport: m.wrapTransport})
		require.NoError(t, err)
		t.Cleanup(c.CloseIdleConnections)
		return c
	}
	ctx := context.Background()
	c := client(api.URL)
	for range 2 {
		_, err := c.SendMessage(ctx, &wire.Payload{MsgID: "m"})
		require.NoError(t, err)
	}
	_, err := c.History(ctx, "chat", 0, 10)
	require.Error(t, err)
	_, err = client(gone.URL).SendMessage(ctx, &wire.Payload{MsgID: "m"})
	require.Error(t, err)

	scrape := scrapeOf(t, m)
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

func TestWrapTransportWithoutMetrics(t *testing.T) {
	var m *metrics
	rt := http.RoundTripper(&http.Transport{})
	require.Same(t, rt, m.wrapTransport(rt))
}

// rawServer answers every connection with handle and returns its address.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// goroutinesBack polls until at most baseline goroutines run, for up to wait.
func goroutinesBack(baseline int, wait time.Duration) (int, bool) {
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline || time.Now().After(deadline) {
			return n, n <= baseline
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetricsKeepTransportLimits: the client the commands build with
// --metrics-addr keeps chatsapi's hostile-server limits (chatsapi's
// hostile_test.go): 100 KiB of response headers fail the call, and a server
// that never speaks TLS holds the dial net/http goes on with after the
// attempt only for min(10s, --request-timeout).
func TestMetricsKeepTransportLimits(t *testing.T) {
	type apiSession struct {
		client *chatsapi.Client
		met    *metrics
	}
	session := func(t *testing.T, url string, timeout time.Duration) *apiSession {
		t.Helper()
		f := apiFlags{apiURL: url, scopeID: "s", rate: -1, timeout: timeout}
		f.metrics.addr = "127.0.0.1:0"
		met, err := f.metrics.start(slog.New(slog.DiscardHandler), "run", "r1", nil, func(string) string { return "" })
		require.NoError(t, err)
		require.NotNil(t, met, "metrics on")
		t.Cleanup(met.close)
		client, err := f.client("s", cliSecret, met)
		require.NoError(t, err)
		t.Cleanup(client.CloseIdleConnections)
		return &apiSession{client: client, met: met}
	}

	t.Run("response headers", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
				return
			}
			body := `{"new_message":{"msgid":"amo-1"}}`
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+
				strings.Repeat("X-Pad: "+strings.Repeat("a", 1016)+"\r\n", 100)+
				"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		})
		api := session(t, "http://"+addr, 5*time.Second)
		_, err := api.client.SendMessage(context.Background(), &wire.Payload{MsgID: "m"})
		require.ErrorContains(t, err, "server response headers exceeded 65536 bytes")
		v, ok := metricValue(scrapeOf(t, api.met), "kommo_import_http_requests_total", `endpoint="send_message"`, `code="error"`)
		require.True(t, ok)
		require.Equal(t, 1.0, v, "the attempt went through the metrics")
	})

	t.Run("TLS handshake", func(t *testing.T) {
		addr := rawServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
		api := session(t, "https://"+addr, 300*time.Millisecond)
		baseline := runtime.NumGoroutine()
		start := time.Now()
		_, err := api.client.SendMessage(context.Background(), &wire.Payload{MsgID: "m"})
		require.Error(t, err)
		require.Less(t, time.Since(start), 2*time.Second)
		// Nothing closes idle connections: the handshake cap alone ends the dial.
		n, ok := goroutinesBack(baseline, 5*time.Second)
		require.True(t, ok, "%d goroutines 5s after the call, %d before: the dial outlived the 300ms handshake cap", n, baseline)
	})
}

func TestMetricsWarnWhenReachableFromTheNetwork(t *testing.T) {
	tests := []struct {
		addr string
		warn bool
	}{
		{":0", true},
		{"0.0.0.0:0", true},
		{"[::]:0", true},
		{"127.0.0.1:0", false},
		{"[::1]:0", false},
		{"localhost:0", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			var logs bytes.Buffer
			f := metricsFlags{addr: tt.addr}
			m, err := f.start(slog.New(slog.NewTextHandler(&logs, nil)), "run", "r1", nil, func(string) string { return "" })
			require.NoError(t, err)
			m.close()
			if tt.warn {
				require.Contains(t, logs.String(), "level=WARN msg=\"metrics are reachable from the network: they show run names and message counts")
			} else {
				require.NotContains(t, logs.String(), "WARN")
			}
		})
	}
}

// dashboardPath is the Grafana dashboard shipped for these metrics.
const dashboardPath = "../../../deploy/grafana/kommo-import.json"

// requireDashboardMatches fails unless the Grafana dashboard is an
// importable export (the data source an input, every panel on it) whose
// queries name only series that scrape has.
func requireDashboardMatches(t *testing.T, scrape string) {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	type datasource struct{ Type, UID string }
	var dash struct {
		Inputs []struct{ Name, Type, PluginID string } `json:"__inputs"`
		UID    string
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource *datasource
			Targets    []struct {
				Expr       string
				Datasource *datasource
			}
		}
		Templating struct {
			List []struct {
				Name       string
				Datasource *datasource
			}
		}
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.Len(t, dash.Inputs, 1)
	require.Equal(t, "DS_PROMETHEUS", dash.Inputs[0].Name)
	require.Equal(t, "datasource", dash.Inputs[0].Type)
	require.Equal(t, "prometheus", dash.Inputs[0].PluginID)
	require.NotEmpty(t, dash.UID)
	onInput := func(what string, ds *datasource) {
		require.NotNil(t, ds, what)
		require.Equal(t, datasource{"prometheus", "${DS_PROMETHEUS}"}, *ds, what)
	}
	for _, v := range dash.Templating.List {
		onInput("variable "+v.Name, v.Datasource)
	}
	ids := map[int]bool{}
	series := regexp.MustCompile(`\b(?:kommo_import|go|process)_[a-z_]+`)
	for _, p := range dash.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		onInput(p.Title, p.Datasource)
		require.NotEmpty(t, p.Targets, p.Title)
		for _, q := range p.Targets {
			onInput(p.Title, q.Datasource)
			names := series.FindAllString(q.Expr, -1)
			require.NotEmpty(t, names, "%s: %s", p.Title, q.Expr)
			for _, name := range names {
				require.Regexp(t, `(?m)^`+name+`[{ ]`, scrape, "%s: %s is not in the scrape", p.Title, name)
			}
		}
	}
}

// requireLintClean fails on anything promlint (the checks of promtool check
// metrics) finds in scrape.
func requireLintClean(t *testing.T, scrape string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(scrape)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems, "promlint")
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

// scrapeOut is where make lint has the mid-run scrape written for promtool.
var scrapeOut = flag.String("scrape-out", "", "write TestMetricsServedDuringARun's mid-run scrape to this file")

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
		{"kommo_import_rate_limit_paused_until_timestamp_seconds", nil},
		{"kommo_import_rate_limit_wait_seconds_total", nil},
		{"kommo_import_rate_limit_requests_total", nil},
		{"kommo_import_messages_sent_total", nil},
		{"kommo_import_progress_done_messages", nil},
		{"kommo_import_progress_messages", nil},
		{"kommo_import_processes", nil},
		{"kommo_import_database_down", nil},
		{"go_goroutines", nil},
	} {
		_, ok := metricValue(scrape, s.name, s.labels...)
		require.True(t, ok, "%s%v missing from:\n%s", s.name, s.labels, scrape)
	}
	rate, _ := metricValue(scrape, "kommo_import_rate_limit_requests_per_second")
	require.Equal(t, 50.0, rate)
	total, _ := metricValue(scrape, "kommo_import_progress_messages")
	require.Equal(t, 14.0, total)
	require.NotContains(t, scrape, cliSecret)
	requireLintClean(t, scrape)
	requireDashboardMatches(t, scrape)
	if *scrapeOut != "" {
		require.NoError(t, os.WriteFile(*scrapeOut, []byte(scrape), 0o644))
	}

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
