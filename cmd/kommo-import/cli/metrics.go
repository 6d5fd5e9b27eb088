package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
)

// metricsFlags are --metrics-addr, --metrics-textfile, --metrics-push and
// --metrics-interval, shared by run, retry and verify.
type metricsFlags struct {
	addr     string
	textfile string
	push     string
	interval time.Duration
}

func (m *metricsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.addr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics while the command runs, e.g. 127.0.0.1:9090 (default: off)")
	fs.StringVar(&m.textfile, "metrics-textfile", "", "write the kommo_import_ metrics to `FILE.prom` for node_exporter's textfile collector, every\n"+
		"--metrics-interval and at the end (a temporary file renamed over it): they outlive the process")
	fs.StringVar(&m.push, "metrics-push", "", "push the kommo_import_ metrics to the Prometheus Pushgateway at `URL` (http://HOST:9091), every\n"+
		"--metrics-interval and at the end, grouped by job=kommo-import, run, command and instance (the host);\n"+
		"basic auth: the user in the URL, the password in env "+envPushPassword)
	durationVar(fs, &m.interval, "metrics-interval", 30*time.Second, time.Second, time.Hour, false, "how often (`DURATION`) --metrics-textfile and --metrics-push write")
}

// statesRefresh is how often the messages-by-state gauge is read from the
// database: a count over the run's rows, too heavy to run on every scrape.
var statesRefresh = 10 * time.Second // a variable for tests

// metrics serves one command's Prometheus metrics. A nil *metrics (no
// --metrics-addr) is valid and does nothing, so commands need no branches.
type metrics struct {
	reg  *prometheus.Registry
	run  prometheus.Registerer // adds the run="NAME" label
	srv  *http.Server
	addr string // where it listens (the real port when given :0)
	log  *slog.Logger

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	states   *prometheus.GaugeVec

	exp     *exporter // --metrics-textfile, --metrics-push; nil: neither
	pool    *pgxpool.Pool
	runName string

	stop chan struct{}
	wg   sync.WaitGroup
}

// start listens on the flag's address and serves /metrics until close, and
// writes or pushes them (--metrics-textfile, --metrics-push) every interval
// and at close. It returns nil (and no error) when no metrics flag is given.
// It refreshes the run's message counts by state from pool in the
// background. An address that is not loopback (":9090", "0.0.0.0:9090",
// "[::]:9090", a LAN address) is served with a warning.
func (m *metricsFlags) start(log *slog.Logger, command, run string, pool *pgxpool.Pool, getenv func(string) string) (*metrics, error) {
	if m.addr == "" && m.textfile == "" && m.push == "" {
		return nil, nil
	}
	met := newMetrics(run)
	met.log, met.pool, met.runName = log, pool, run
	exp, err := m.newExporter(command, run, met.reg, getenv)
	if err != nil {
		return nil, err
	}
	met.exp = exp
	if exp != nil {
		met.wg.Add(1)
		go func() {
			defer met.wg.Done()
			met.exportEvery(exp.every)
		}()
	}
	if pool != nil {
		met.wg.Add(1)
		go func() {
			defer met.wg.Done()
			met.refreshStates(pool, run)
		}()
	}
	if m.addr == "" {
		return met, nil
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		met.close()
		return nil, withHint(ExitUsage, fmt.Errorf("--metrics-addr: %w", err), "give a free address, e.g. --metrics-addr 127.0.0.1:9090")
	}
	met.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(met.reg, promhttp.HandlerOpts{Registry: met.reg}))
	met.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	met.wg.Add(1)
	go func() {
		defer met.wg.Done()
		if err := met.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+met.addr+"/metrics")
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("metrics are reachable from the network: they show run names and message counts to anyone who can connect; "+
			"listen on 127.0.0.1 unless a firewall or the scraper's network keeps others out", "addr", met.addr)
	}
	return met, nil
}

func newMetrics(run string) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &metrics{
		reg:  reg,
		run:  prometheus.WrapRegistererWith(prometheus.Labels{"run": run}, reg),
		stop: make(chan struct{}),
		log:  slog.New(slog.DiscardHandler),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kommo_import_http_requests_total",
			Help: "HTTP attempts to the Chats API by endpoint and status code (code \"error\": no response).",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kommo_import_http_request_duration_seconds",
			Help:    "Time from sending a Chats API request to its response headers (or failure).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kommo_import_http_requests_in_flight",
			Help: "Chats API requests waiting for their response.",
		}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kommo_import_messages",
			Help: "Messages of the run by state (pending, sending = in doubt, sent, failed), from the database, all processes together.",
		}, []string{"state"}),
	}
	m.run.MustRegister(m.requests, m.duration, m.inFlight, m.states)
	return m
}

// close stops serving and the refresh, and writes or pushes the metrics a
// last time, with the run's message states read afresh; safe on nil.
func (m *metrics) close() {
	if m == nil {
		return
	}
	close(m.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if m.srv != nil {
		_ = m.srv.Shutdown(ctx)
	}
	m.wg.Wait()
	if m.exp != nil {
		if m.pool != nil {
			if err := m.loadStates(ctx, m.pool, m.runName); err != nil {
				m.log.Debug("metrics: read message states", "err", err)
			}
		}
		if err := m.exp.export(ctx, m.reg); err != nil {
			m.log.Warn("metrics: the last export failed", "err", err)
		}
	}
}

// exportEvery writes or pushes the metrics every interval until close.
func (m *metrics) exportEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := m.exp.export(ctx, m.reg)
		cancel()
		if err != nil && !warned {
			warned = true // once: a Pushgateway that is down would log every interval
			m.log.Warn("metrics: export failed (the run goes on; said once)", "err", err)
		}
	}
}

func (m *metrics) refreshStates(pool *pgxpool.Pool, run string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-m.stop
		cancel()
	}()
	t := time.NewTicker(statesRefresh)
	defer t.Stop()
	for {
		if err := m.loadStates(ctx, pool, run); err != nil && ctx.Err() == nil {
			m.log.Debug("metrics: read message states", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *metrics) loadStates(ctx context.Context, pool *pgxpool.Pool, run string) error {
	got, err := importer.StateCounts(ctx, pool, run)
	if err != nil {
		return err
	}
	for _, s := range []importer.State{importer.StatePending, importer.StateSending, importer.StateSent, importer.StateFailed} {
		m.states.WithLabelValues(string(s)).Set(float64(got[s]))
	}
	return nil
}

// watchRate exposes the rate schedule as the importer sees it: the rate in
// force, the pause, the waits and the attempts; safe on nil.
func (m *metrics) watchRate(im *importer.Importer) {
	if m == nil {
		return
	}
	m.run.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_rate_limit_requests_per_second",
			Help: "Request rate in force for the scope, all processes together (lowered after 429s); 0: unlimited.",
		}, func() float64 { return im.Progress().Rate }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_rate_limit_paused",
			Help: "1 while every request is paused after a 429, else 0.",
		}, func() float64 {
			if im.Progress().PausedUntil.IsZero() {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_rate_limit_paused_until_timestamp_seconds",
			Help: "Unix time the current 429 pause ends; 0 when not paused.",
		}, func() float64 {
			t := im.Progress().PausedUntil
			if t.IsZero() {
				return 0
			}
			return float64(t.UnixNano()) / 1e9
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kommo_import_rate_limit_wait_seconds_total",
			Help: "Time this process's requests spent waiting for their slot of the rate schedule (pauses included).",
		}, func() float64 { return im.Progress().RateWait.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kommo_import_rate_limit_requests_total",
			Help: "Slots of the rate schedule this process used (every HTTP attempt, look-ups and retries included).",
		}, func() float64 { return float64(im.Progress().Requests) }),
	)
}

// watchImporter exposes the importer's own progress; safe on nil.
func (m *metrics) watchImporter(im *importer.Importer) {
	if m == nil {
		return
	}
	m.run.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kommo_import_messages_sent_total",
			Help: "Messages this process delivered (other processes of the run count their own).",
		}, func() float64 { return float64(im.Progress().SentNow) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_progress_done_messages",
			Help: "Messages of the run sent or failed, as this process last knew (the bar's position).",
		}, func() float64 { return float64(im.Progress().Done) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_progress_messages",
			Help: "Messages the run holds, as this process last knew (the bar's end; known once sending starts).",
		}, func() float64 { return float64(im.Progress().Total) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_processes",
			Help: "Live processes working the run, as this process last saw.",
		}, func() float64 { return float64(im.Progress().Processes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kommo_import_database_down",
			Help: "1 while sending waits for the database to come back.",
		}, func() float64 {
			if im.Progress().DBDown {
				return 1
			}
			return 0
		}),
	)
}

// wrapTransport is chatsapi.Config.WrapTransport: it observes every attempt
// on chatsapi's own transport, which keeps that transport's limits. It
// returns rt itself when metrics are off (a nil *metrics).
func (m *metrics) wrapTransport(rt http.RoundTripper) http.RoundTripper {
	if m == nil {
		return rt
	}
	return &observedTransport{next: rt, m: m}
}

// observedTransport counts every attempt by endpoint and status, times it
// and tracks those in flight.
type observedTransport struct {
	next http.RoundTripper
	m    *metrics
}

func (t *observedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ep := chatsapi.Endpoint(r)
	t.m.inFlight.Inc()
	defer t.m.inFlight.Dec()
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.duration.WithLabelValues(ep).Observe(time.Since(start).Seconds())
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	t.m.requests.WithLabelValues(ep, code).Inc()
	return resp, err
}
