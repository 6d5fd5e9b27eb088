package importer

import (
	"sync"
	"time"
)

// throughputWindow is how far back Progress.Throughput looks.
const throughputWindow = time.Minute

// meter measures the delivery rate actually achieved: samples of the done
// count, one per heartbeat, over the last minute.
type meter struct {
	mu      sync.Mutex
	samples []sample // oldest first
}

type sample struct {
	at   time.Time
	done int64
}

// add records the done count at now and forgets samples older than the window.
func (m *meter) add(now time.Time, done int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, sample{now, done})
	cut := 0
	for cut < len(m.samples)-1 && now.Sub(m.samples[cut].at) > throughputWindow {
		cut++
	}
	m.samples = m.samples[cut:]
}

// rate is messages per second between the oldest sample of the window and
// the newest; 0 until two samples a second apart exist.
func (m *meter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	d := last.at.Sub(first.at).Seconds()
	if d < 1 || now.Sub(last.at) > throughputWindow {
		return 0
	}
	return float64(last.done-first.done) / d
}
