package importer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

const (
	testScope  = "chan-1_acct-1"
	testSecret = signer.Secret("test-secret-3f9a2c")
)

// harness is one database and one simulator shared by the importers of a test.
type harness struct {
	t    *testing.T
	pool *pgxpool.Pool
	sim  *sim.Server
	url  string
	sent sendClock // when each request of every importer left
}

// sendClock records the moment each HTTP request leaves an importer (its
// transport's RoundTrip begins): the pacing as the importer did it, before
// the jitter of the way to the simulator, which in a test shares the
// race-instrumented process and two cores with everything else.
type sendClock struct {
	mu    sync.Mutex
	times []time.Time
}

func (c *sendClock) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// maxInAnySecond is the most requests that left within any one second.
func (c *sendClock) maxInAnySecond() int {
	c.mu.Lock()
	ts := slices.Clone(c.times)
	c.mu.Unlock()
	slices.SortFunc(ts, time.Time.Compare)
	best := 0
	for i, j := 0, 0; i < len(ts); i++ {
		for ts[i].Sub(ts[j]) >= time.Second {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newHarness(t *testing.T, opts sim.Options) *harness {
	t.Helper()
	pool := pgtest.Pool(t)
	_, err := migrations.Apply(context.Background(), pool)
	require.NoError(t, err)
	opts.ScopeID = testScope
	opts.Secret = testSecret
	s, err := sim.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &harness{t: t, pool: pool, sim: s, url: srv.URL}
}

// importer returns an Importer for run name over the JSONL file path.
func (h *harness) importer(name, path string, mod func(*importer.Config)) *importer.Importer {
	h.t.Helper()
	return h.importerFor(name, path, testScope, mod)
}

// importerForScope is importer for another scope than the simulator's.
func (h *harness) importerForScope(name, path, scope string) *importer.Importer {
	h.t.Helper()
	return h.importerFor(name, path, scope, nil)
}

func (h *harness) importerFor(name, path, scope string, mod func(*importer.Config)) *importer.Importer {
	h.t.Helper()
	cfg := importer.Config{
		Run: name, ScopeID: scope,
		Rate: -1, Workers: 4,
		ReconcileWait: 50 * time.Millisecond,
		BackoffBase:   10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond, Lease: 5 * time.Second,
		MaxAttempts: 30,
		// As the CLI does (--request-timeout sets both): the fence after a
		// lapsed process's conversations are taken over is its lease's end
		// plus this, and the client below gives up after it.
		RequestTimeout: 2 * time.Second,
	}
	if path != "" {
		cfg.Open, cfg.Source = openJSONL(path), fileIdentity(h.t, path)
	}
	if mod != nil {
		mod(&cfg)
	}
	client, err := chatsapi.New(chatsapi.Config{BaseURL: h.url, ScopeID: cfg.ScopeID, Secret: testSecret, Timeout: cfg.RequestTimeout,
		WrapTransport: h.sent.wrap})
	require.NoError(h.t, err)
	im, err := importer.New(h.pool, client, cfg)
	require.NoError(h.t, err)
	return im
}

// writePayloads writes payloads as a JSONL export and returns its path.
func writePayloads(t *testing.T, msgs []wire.Payload) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	for i := range msgs {
		require.NoError(t, enc.Encode(&msgs[i]))
	}
	require.NoError(t, f.Close())
	return path
}

// fileIdentity is a JSONL file's identity as the CLI gives it to a run.
func fileIdentity(t *testing.T, path string) sources.Identity {
	t.Helper()
	id, err := sources.Spec{Kind: sources.KindJSONL, Path: path}.Identity()
	require.NoError(t, err)
	return id
}

// openJSONL opens a JSONL file as a run's source.
func openJSONL(path string) importer.OpenFunc {
	return func(ctx context.Context) (importer.Source, error) {
		return sources.Open(ctx, sources.Spec{Kind: sources.KindJSONL, Path: path})
	}
}

// runTogether runs the importers at once, as processes of one run would,
// and returns each one's summary and error when all have ended.
func runTogether(ims ...*importer.Importer) ([]*importer.Summary, []error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sums := make([]*importer.Summary, len(ims))
	errs := make([]error, len(ims))
	var wg sync.WaitGroup
	for i, im := range ims {
		wg.Go(func() { sums[i], errs[i] = im.Run(ctx, nil) })
	}
	wg.Wait()
	return sums, errs
}

func (h *harness) run(name, path string, mod func(*importer.Config)) *importer.Summary {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := h.importer(name, path, mod).Run(ctx, nil)
	require.NoError(h.t, err)
	return sum
}
