package sim

import (
	"math"
	"time"
)

// bucket is a token bucket on an injected clock. Unlike x/time/rate it keeps
// no hidden reservation state, so what a test sees is exactly "tokens now".
// A refused request takes no token: a client that backs off is not punished
// further, while one that hammers stays refused.
type bucket struct {
	rate   float64 // tokens per second; 0 = unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *bucket) allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// window tracks the largest number of requests seen in any sliding one-second
// window, the figure tests use to check that a client kept to its rate.
type window struct {
	times []time.Time
	max   int
}

func (w *window) add(now time.Time) {
	cut := now.Add(-time.Second)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = append(w.times[i:], now)
	w.max = max(w.max, len(w.times))
}
