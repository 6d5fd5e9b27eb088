package sim

import (
	"math"
	"slices"
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
// window, the figure tests use to check that a client kept to its rate. The
// times are when requests arrived, taken before the server's lock, so they
// may come a little out of order: each is put in its place, and the windows
// ending at it and at the later ones are counted.
type window struct {
	times []time.Time // sorted, the last two seconds or so
	max   int
}

func (w *window) add(now time.Time) {
	i, _ := slices.BinarySearchFunc(w.times, now, func(a, b time.Time) int { return a.Compare(b) })
	for i < len(w.times) && w.times[i].Equal(now) {
		i++
	}
	w.times = slices.Insert(w.times, i, now)
	for j := i; j < len(w.times); j++ {
		// The window (times[j]-1s, times[j]].
		cut := w.times[j].Add(-time.Second)
		lo, _ := slices.BinarySearchFunc(w.times, cut, func(a, b time.Time) int { return a.Compare(b) })
		for lo < len(w.times) && !w.times[lo].After(cut) {
			lo++
		}
		w.max = max(w.max, j-lo+1)
	}
	// Keep a second more than the window, for arrivals that come late.
	last := w.times[len(w.times)-1].Add(-2 * time.Second)
	k := 0
	for k < len(w.times) && w.times[k].Before(last) {
		k++
	}
	if k > 0 {
		w.times = slices.Delete(w.times, 0, k)
	}
}
