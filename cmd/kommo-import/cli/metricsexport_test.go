package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
)

// fakePushgateway records every push: its method, path and families.
type fakePushgateway struct {
	mu     sync.Mutex
	pushes []pushed
}

type pushed struct {
	method, path string
	families     map[string]*dto.MetricFamily
}

func (g *fakePushgateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dec := expfmt.NewDecoder(r.Body, expfmt.ResponseFormat(r.Header))
	fams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if err != io.EOF {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			break
		}
		fams[mf.GetName()] = &mf
	}
	g.mu.Lock()
	g.pushes = append(g.pushes, pushed{r.Method, r.URL.Path, fams})
	g.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (g *fakePushgateway) all() []pushed {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]pushed(nil), g.pushes...)
}

// value is the value of the family's sample whose labels include want.
func value(t *testing.T, mf *dto.MetricFamily, want map[string]string) float64 {
	t.Helper()
	require.NotNil(t, mf)
	for _, m := range mf.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("%s has no sample with %v", mf.GetName(), want)
	return 0
}

// TestMetricsOutliveTheProcess: a batch job's metrics go to node_exporter's
// textfile collector and to a Pushgateway, every --metrics-interval and at
// the end, with the final counts: after the process is gone they say what
// it did.
func TestMetricsOutliveTheProcess(t *testing.T) {
	c := newFrontedEnv(t, sim.Options{Latency: 200 * time.Millisecond})
	gw := &fakePushgateway{}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	textfile := filepath.Join(t.TempDir(), "kommo.prom")

	_, errOut, code := c.run(t, "run", "--run", "r1", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--workers", "1",
		"--metrics-textfile", textfile, "--metrics-push", srv.URL, "--metrics-interval", "1s")
	require.Equal(t, ExitOK, code, errOut)

	// The textfile: the text format node_exporter reads, only our families.
	fi, err := os.Stat(textfile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "node_exporter runs as another user")
	f, err := os.Open(textfile)
	require.NoError(t, err)
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	require.NoError(t, err)
	for name := range fams {
		require.True(t, strings.HasPrefix(name, "kommo_import_"), "%s would collide with node_exporter's own", name)
	}
	require.EqualValues(t, 14, value(t, fams["kommo_import_messages"], map[string]string{"run": "r1", "state": "sent"}), "the final states, read at the end")
	require.EqualValues(t, 0, value(t, fams["kommo_import_messages"], map[string]string{"run": "r1", "state": "pending"}))
	require.EqualValues(t, 14, value(t, fams["kommo_import_messages_sent_total"], map[string]string{"run": "r1"}))
	left, err := filepath.Glob(filepath.Join(filepath.Dir(textfile), ".*tmp"))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file left behind")

	// The Pushgateway: PUT per interval and at the end, grouped by job, run,
	// command and instance.
	pushes := gw.all()
	require.GreaterOrEqual(t, len(pushes), 2, "every second of a run of about 3 s, and at the end")
	host, _ := os.Hostname()
	last := pushes[len(pushes)-1]
	require.Equal(t, http.MethodPut, last.method)
	rest, ok := strings.CutPrefix(last.path, "/metrics/job/kommo-import/")
	require.True(t, ok, last.path)
	parts := strings.Split(rest, "/")
	grouping := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		grouping[parts[i]] = parts[i+1]
	}
	require.Equal(t, map[string]string{"run": "r1", "command": "run", "instance": host}, grouping)
	require.EqualValues(t, 14, value(t, last.families["kommo_import_messages"], map[string]string{"state": "sent"}))
	require.EqualValues(t, 14, value(t, last.families["kommo_import_messages_sent_total"], nil))
	for name := range last.families {
		require.True(t, strings.HasPrefix(name, "kommo_import_"), name)
	}

	// A URL with a password is refused: ps would show it.
	_, errOut, code = c.run(t, "run", "--run", "r2", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none",
		"--metrics-push", "http://u:hunter2@127.0.0.1:9091")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, envPushPassword)
	require.NotContains(t, errOut, "hunter2")
	_, errOut, code = c.run(t, "run", "--run", "r2", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none",
		"--metrics-textfile", filepath.Join(t.TempDir(), "kommo.txt"))
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "only files ending in .prom")
}
