package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

// stallProxy passes TCP to PostgreSQL until stall; from then on it passes
// nothing either way and accepts new connections without answering, as a
// network partition does: no reset, no error, only silence.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	release chan struct{}
	mu      sync.Mutex
	conns   []net.Conn
}

func newStallProxy(t *testing.T, dbURL string) (*stallProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{ln: ln, target: u.Host, release: make(chan struct{})}
	t.Cleanup(func() {
		ln.Close()
		close(p.release)
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go p.serve()
	u.Host = ln.Addr().String()
	return p, u.String()
}

func (p *stallProxy) stall() { p.stalled.Store(true) }

func (p *stallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		if p.stalled.Load() {
			continue // accepted, never answered
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if p.stalled.Load() {
			<-p.release
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			dst.Close()
			return
		}
	}
}

// start runs a command in the background with a signal channel.
func (c *cliEnv) startWithSignals(sig <-chan os.Signal, args ...string) <-chan cmdResult {
	done := make(chan cmdResult, 1)
	go func() {
		// After a hard stop the command may still write while the test reads.
		var out, errOut syncWriter
		env := Env{Getenv: func(k string) string { return c.vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
		err := Run(context.Background(), args, env, sig)
		code := ExitCode(err, &errOut)
		done <- cmdResult{out.String(), errOut.String(), code}
	}()
	return done
}

func TestSecondSignalEndsTheRunWhileTheDatabaseHangs(t *testing.T) {
	c := newFrontedEnv(t, sim.Options{Latency: 20 * time.Millisecond})
	proxy, dbURL := newStallProxy(t, c.vars[envDatabaseURL])
	c.vars[envDatabaseURL] = dbURL
	path := ledgertest.WriteJSONL(t, ledgertest.Gen(31, 10, 30))
	sig := make(chan os.Signal, 2)
	done := c.startWithSignals(sig, "run", "--run", "hang", "--source", "jsonl:"+path, "--rate", "unlimited", "--workers", "2", "--progress", "none")
	require.Eventually(t, func() bool { return len(c.sim.Ledger()) >= 5 }, 30*time.Second, 5*time.Millisecond)

	proxy.stall()
	sig <- os.Interrupt
	time.Sleep(200 * time.Millisecond)
	hard := time.Now()
	sig <- os.Interrupt
	var res cmdResult
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not end the command")
	}
	took := time.Since(hard)
	require.Less(t, took, 1500*time.Millisecond, "the second signal ends the command at once: %s", res.stderr)
	require.Equal(t, ExitInterrupted, res.code, res.stderr)
	require.Contains(t, res.stderr, "stopping: finishing the requests in flight (interrupt again to stop at once)")
	require.Contains(t, res.stderr, "stopping at once")
	require.Contains(t, res.stderr, "stays in doubt, and is looked up in its chat's history on resume")
	require.Contains(t, res.stderr, "resume with: kommo-import run --run hang --source jsonl:")
}

func TestFirstSignalStopsACommandWithNothingToFinish(t *testing.T) {
	// verify, status, report: the first signal cancels at once.
	sig := make(chan os.Signal, 1)
	var errOut bytes.Buffer
	ctx, st := newStopper(context.Background(), sig, &errOut, false)
	defer st.close()
	sig <- os.Interrupt
	select {
	case <-ctx.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the first signal did not cancel a command with nothing to finish")
	}
	require.True(t, st.stopped())
}
