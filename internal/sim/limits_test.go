package sim

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const tooManyBody = `{"title":"Too Many Requests","type":"https://httpstatus.es/429","status":429,"detail":"Rate limit exceeded","retry_after":%d}`

func TestRateLimitBucket(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Now: clock.Now, Rate: 7, RetryAfter: 300 * time.Second})
	n := 0
	next := func() (*http.Response, []byte) {
		n++
		return e.send(msgBody(fmt.Sprintf("m-%d", n), "conv-1", 1000_000))
	}
	for i := range 7 { // burst = ceil(7)
		resp, b := next()
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d: %s", i, b)
	}
	resp, b := next()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "300", resp.Header.Get("Retry-After"))
	require.Equal(t, fmt.Sprintf(tooManyBody, 300), string(b))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	// Refused requests take no token: after 1/7 s exactly one more fits,
	// however many were refused in between.
	for range 5 {
		resp, _ = next()
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	}
	clock.Advance(time.Second/7 + time.Microsecond)
	resp, _ = next()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = next()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)

	// Refusals of any kind count against the rate: the limiter stands first.
	clock.Advance(time.Hour)
	for i := range 7 {
		resp, _ := e.do(http.MethodPost, sendPath, []byte(`{}`), func(r *http.Request) { r.Header.Del("X-Signature") })
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "request %d", i)
	}
	resp, _ = next()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)

	st := e.sim.Stats()
	require.Equal(t, int64(8), st.RateLimited)
	require.Equal(t, 15, st.MaxRequestsInAny1s, "the 13 requests of the first instant and the 2 after 1/7 s")
	require.Len(t, e.sim.Ledger(), 8)
}

func TestMaxRequestsInAny1s(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Now: clock.Now})
	// A client pacing itself at 5/s for 3 s: never more than 5 in a window
	// that excludes its left edge.
	for i := range 15 {
		resp, _ := e.send(msgBody(fmt.Sprintf("m-%d", i), "conv-1", 1000_000))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		clock.Advance(200 * time.Millisecond)
	}
	require.Equal(t, 5, e.sim.Stats().MaxRequestsInAny1s)
	// A burst of 9 within 100 ms raises it.
	for i := range 9 {
		e.send(msgBody(fmt.Sprintf("b-%d", i), "conv-1", 1000_000))
		clock.Advance(10 * time.Millisecond)
	}
	require.Equal(t, 9+4, e.sim.Stats().MaxRequestsInAny1s, "the burst plus the 4 paced requests in the second before it")
}

// TestRateLimitUnderConcurrentBurst uses the real clock: 50 goroutines hammer
// the simulator for ~1.2 s; within the first second no more than burst+rate
// requests may be accepted.
func TestRateLimitUnderConcurrentBurst(t *testing.T) {
	e := newEnv(t, Options{Rate: 7, RetryAfter: time.Second})
	start := time.Now()
	var (
		mu            sync.Mutex
		okFirstSecond int
		ok, limited   int
	)
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := e.ts.Client()
			for i := 0; time.Since(start) < 1200*time.Millisecond; i++ {
				sent := time.Now()
				req := e.request(http.MethodPost, sendPath, msgBody(fmt.Sprintf("g%d-%d", g, i), fmt.Sprintf("conv-%d", g), 1000_000), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK:
					ok++
					if sent.Sub(start) < time.Second {
						okFirstSecond++
					}
				case http.StatusTooManyRequests:
					limited++
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, okFirstSecond, 7+7, "burst + rate")
	require.GreaterOrEqual(t, okFirstSecond, 7, "the burst itself is served")
	require.Positive(t, limited)
	st := e.sim.Stats()
	require.Equal(t, int64(ok), st.Accepted)
	require.Equal(t, int64(limited), st.RateLimited)
	require.Greater(t, st.MaxRequestsInAny1s, 7+7, "the window saw the excess the limiter refused")
	require.LessOrEqual(t, int64(st.MaxRequestsInAny1s), st.Requests)
}

func TestBlockEmulation(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{Now: clock.Now, Rate: 1, RetryAfter: time.Second, BlockAfter: 2})
	resp, _ := e.send(msgBody("m-1", "conv-1", 1000_000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for range 2 {
		resp, _ = e.send(msgBody("m-2", "conv-1", 1000_000))
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
	}
	require.True(t, e.sim.Stats().Blocked)

	// Even a well-signed request after a long pause is refused, with HTML.
	clock.Advance(time.Hour)
	for _, path := range []string{sendPath, chatPath} {
		resp, b := e.do(http.MethodPost, path, msgBody("m-3", "conv-1", 1000_000), nil)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
		require.Contains(t, string(b), "<title>403 Forbidden</title>")
		require.NotContains(t, string(b), "ORIGIN_INVALID_SIGNATURE")
	}
	st := e.sim.Stats()
	require.Equal(t, int64(2), st.BlockedRequests)
	require.Len(t, e.sim.Ledger(), 1)

	resp, err := http.Post(e.ts.URL+"/_sim/unblock", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = e.send(msgBody("m-3", "conv-1", 1000_000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, e.sim.Stats().Blocked)
}

func TestNoLimitByDefault(t *testing.T) {
	e := newEnv(t, Options{})
	for i := range 30 {
		resp, _ := e.send(msgBody(fmt.Sprintf("m-%d", i), "conv-1", 1000_000))
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}

// The window counts requests when they arrive. A request that arrives while
// another holds the server's lock (writing the ledger to a slow disk) was
// counted when it got the lock: later, so the second after it looked more
// crowded than it was (kommo-import's bench saw 21 in a second at --rate
// 20, its own requests never more than 20 in a second as written).
func TestWindowCountsArrivalsNotLockTimes(t *testing.T) {
	clock := newFakeClock()
	var nows atomic.Int64
	ledger := &blockingWriter{release: make(chan struct{}), blocked: make(chan struct{})}
	// Counted after the clock is read: the test advances it once b's arrival
	// has read it.
	e := newEnv(t, Options{Now: func() time.Time { now := clock.Now(); nows.Add(1); return now }, Ledger: ledger})
	a := make(chan struct{})
	go func() {
		defer close(a)
		e.send(msgBody("a", "conv-1", 1000_000)) // at 0; its ledger write holds the lock
	}()
	<-ledger.blocked
	clock.Advance(50 * time.Millisecond)
	before := nows.Load()
	b := make(chan struct{})
	go func() {
		defer close(b)
		e.send(msgBody("b", "conv-1", 1000_001)) // arrives at 50 ms, waits for the lock
	}()
	// b's clock readings: the test's signing of it, then its arrival.
	require.Eventually(t, func() bool { return nows.Load() >= before+2 }, 10*time.Second, time.Millisecond, "b arrived")
	clock.Advance(250 * time.Millisecond) // the write takes 300 ms in all
	close(ledger.release)
	<-a
	<-b
	clock.Advance(800 * time.Millisecond) // 1.1 s
	e.send(msgBody("c", "conv-1", 1000_002))
	clock.Advance(50 * time.Millisecond) // 1.15 s: 1.1 s after b arrived
	e.send(msgBody("d", "conv-1", 1000_003))
	require.Equal(t, 2, e.sim.Stats().MaxRequestsInAny1s, "a and b, or c and d: b arrived 1.1 s before d")
	// The ledger says both: when b arrived, and when it was stored.
	var got LedgerEntry
	for _, le := range e.sim.Ledger() {
		if le.MsgID == "b" {
			got = le
		}
	}
	start := clock.Now().Add(-1150 * time.Millisecond)
	require.Equal(t, 50*time.Millisecond, got.ArrivedAt.Sub(start), "arrived_at")
	require.Equal(t, 300*time.Millisecond, got.ReceivedAt.Sub(start), "received_at")
}

// blockingWriter blocks its first write until release is closed.
type blockingWriter struct {
	once     sync.Once
	blocked  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	contents bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.blocked)
		<-w.release
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.contents.Write(p)
}

// Arrivals a little out of order are counted in their places.
func TestWindowTakesArrivalsOutOfOrder(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	var w window
	for _, ms := range []int{0, 300, 200, 1100, 1150, 1050, 5000, 4990} {
		w.add(at(ms))
	}
	// (100, 1100]: 200, 300, 1050, 1100; (150, 1150] adds 1150: 5.
	require.Equal(t, 5, w.max)
	require.Equal(t, []time.Time{at(4990), at(5000)}, w.times, "older than two seconds before the last: dropped")
}
