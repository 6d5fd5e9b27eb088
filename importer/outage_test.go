package importer_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
)

// dbProxy sits between the importer and PostgreSQL so a test can take the
// database away (every connection cut, new ones refused) and bring it back.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}

func (p *dbProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// proxiedPool returns a pool on a fresh database reached through a dbProxy.
func proxiedPool(t *testing.T) (*pgxpool.Pool, *dbProxy) {
	t.Helper()
	u, err := url.Parse(pgtest.URL(t))
	require.NoError(t, err)
	p := newDBProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	pool, err := importer.Connect(context.Background(), u.String(), 10)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = migrations.Apply(context.Background(), pool)
	require.NoError(t, err)
	return pool, p
}

func TestDatabaseOutageIsWaitedOut(t *testing.T) {
	h := newHarness(t, sim.Options{Latency: 2 * time.Millisecond})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	msgs := ledgertest.Gen(11, 10, 40)
	im := h.importer("outage", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = 300 })
	go func() {
		for im.Progress().SentNow < 50 {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.setDown(true)
		time.Sleep(1500 * time.Millisecond)
		proxy.setDown(false)
	}()
	sum, err := im.Run(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	require.Zero(t, h.sim.Stats().Duplicates)
}

func TestDatabaseGoneStopsCleanlyAndResumes(t *testing.T) {
	h := newHarness(t, sim.Options{Latency: 2 * time.Millisecond})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	msgs := ledgertest.Gen(12, 10, 40)
	path := ledgertest.WriteJSONL(t, msgs)
	im := h.importer("gone", path, func(c *importer.Config) { c.Rate = 300; c.DBOutageLimit = time.Second })
	go func() {
		for im.Progress().SentNow < 50 {
			time.Sleep(2 * time.Millisecond)
		}
		proxy.setDown(true)
	}()
	_, err := im.Run(context.Background(), nil)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	require.Contains(t, err.Error(), "database has been unavailable")

	proxy.setDown(false)
	// Messages whose "sent" checkpoint was lost are in doubt: found in history, not resent.
	sum := h.run("gone", path, nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}
