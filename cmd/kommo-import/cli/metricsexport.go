package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// envPushPassword is the Pushgateway's basic-auth password: never in the
// URL, which ps shows.
const envPushPassword = "KOMMO_METRICS_PUSH_PASSWORD"

// pushJob is the job label of every push.
const pushJob = "kommo-import"

// exporter writes a batch job's metrics where they outlive the process:
// node_exporter's textfile collector and a Prometheus Pushgateway, every
// interval and once more at the end. Only the kommo_import_ families go
// out: node_exporter has go_* and process_* of its own (the same names in
// a textfile break its scrape), and a finished job's runtime is not news.
type exporter struct {
	textfile string
	pusher   *push.Pusher
	every    time.Duration
}

// onlyOurs gathers the kommo_import_ families of g.
func onlyOurs(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		out := mfs[:0]
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "kommo_import_") {
				out = append(out, mf)
			}
		}
		return out, err
	})
}

// withoutLabel drops the label name from every metric g gathers: a
// Pushgateway takes the run from the grouping key, and refuses a pushed
// metric that carries a grouping label itself.
func withoutLabel(g prometheus.Gatherer, name string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather() // fresh objects each call: safe to change
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				kept := m.Label[:0]
				for _, l := range m.Label {
					if l.GetName() != name {
						kept = append(kept, l)
					}
				}
				m.Label = kept
			}
		}
		return mfs, err
	})
}

// newExporter checks the flags and returns nil when neither is given.
func (m *metricsFlags) newExporter(command, run string, g prometheus.Gatherer, getenv func(string) string) (*exporter, error) {
	if m.textfile == "" && m.push == "" {
		return nil, nil
	}
	e := &exporter{textfile: m.textfile, every: m.interval}
	if m.textfile != "" {
		if !strings.HasSuffix(m.textfile, ".prom") {
			return nil, withHint(ExitUsage, fmt.Errorf("--metrics-textfile %s: node_exporter's textfile collector reads only files ending in .prom", m.textfile),
				"give a FILE.prom in the directory node_exporter's --collector.textfile.directory names")
		}
		if fi, err := os.Stat(filepath.Dir(m.textfile)); err != nil || !fi.IsDir() {
			return nil, usageError(fmt.Errorf("--metrics-textfile %s: no such directory %s", m.textfile, filepath.Dir(m.textfile)))
		}
	}
	if m.push != "" {
		u, err := url.Parse(m.push)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageError(fmt.Errorf("--metrics-push: want the Pushgateway's http(s)://HOST:PORT, not %q", m.push))
		}
		if _, has := u.User.Password(); has {
			return nil, withHint(ExitUsage, errors.New("--metrics-push: the URL holds a password, which ps and logs would show"),
				"give the user in the URL (https://USER@HOST:9091) and the password in env "+envPushPassword)
		}
		host, _ := os.Hostname()
		p := push.New(m.push, pushJob).Gatherer(withoutLabel(onlyOurs(g), "run")).
			Grouping("run", run).Grouping("command", command).Grouping("instance", host).
			Client(&http.Client{Timeout: 10 * time.Second})
		if u.User != nil {
			p = p.BasicAuth(u.User.Username(), getenv(envPushPassword))
		}
		e.pusher = p
	}
	return e, nil
}

// export writes the textfile and pushes, once; it returns the first error
// of either.
func (e *exporter) export(ctx context.Context, g prometheus.Gatherer) error {
	var errs []error
	if e.textfile != "" {
		if err := writeTextfile(e.textfile, onlyOurs(g)); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-textfile: %w", err))
		}
	}
	if e.pusher != nil {
		if err := e.pusher.PushContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-push: %w", err))
		}
	}
	return errors.Join(errs...)
}

// writeTextfile writes g in the text format to a temporary file beside
// path and renames it over path, so node_exporter never reads half a file.
func writeTextfile(path string, g prometheus.Gatherer) (err error) {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp") // not *.prom: never read half-written
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(tmp, mf); err != nil {
			return err
		}
	}
	// node_exporter usually runs as another user.
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
