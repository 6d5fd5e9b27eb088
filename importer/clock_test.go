package importer

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// fakeClock is a Clock that moves only when told to (Advance), for fast,
// deterministic tests of the pacer and the windows, as x/time/rate tests
// itself.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	waiters chan struct{} // signalled when a timer is made
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), waiters: make(chan struct{}, 1024)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		t.fired = true
	} else {
		c.timers = append(c.timers, t)
	}
	select {
	case c.waiters <- struct{}{}:
	default:
	}
	return t
}

// Advance moves the clock by d and fires the timers due by then, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) && !t.fired {
			t.fired = true
			t.ch <- t.at
			continue
		}
		if !t.fired {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Pending is the number of timers waiting to fire.
func (c *fakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntilTimers waits (in real time, briefly) until n timers wait.
func (c *fakeClock) BlockUntilTimers(n int) {
	for c.Pending() < n {
		<-c.waiters
	}
}

type fakeTimer struct {
	c     *fakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.fired
	t.fired = true
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			break
		}
	}
	return was
}

// memSchedule is the scope's GCRA schedule in memory, on a clock of its own
// (the database's, which may be set apart from ours), with the same rules
// as the store's statements: a slot at max(tat, now + lead, end of pause),
// tat one interval (over the factor) on, the alone interval while one
// pacer has the scope to itself, the handover before the first shared slot;
// a pause halves the factor once an
// episode; the factor recovers a step after a quiet period.
type memSchedule struct {
	mu          sync.Mutex
	db          func() time.Time // the database's now
	rtt         time.Duration    // added to the caller's clock by each call (the round trip)
	clock       *fakeClock
	tat         time.Time
	factor      float64
	lastStep    time.Time
	pausedUntil time.Time
	holder      string
	sharedUntil time.Time
	calls       int
	delays      int // DelaySlots calls
}

func newMemSchedule(clock *fakeClock, offset time.Duration) *memSchedule {
	return &memSchedule{clock: clock, db: func() time.Time { return clock.Now().Add(offset) }, factor: 1}
}

func (m *memSchedule) ReserveSlot(_ context.Context, p store.SlotParams) (store.Slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.rtt > 0 {
		m.clock.Advance(m.rtt / 2)
		defer m.clock.Advance(m.rtt - m.rtt/2)
	}
	now := m.db()
	if m.lastStep.IsZero() {
		m.lastStep = now
	}
	if m.factor < 1 && !m.lastStep.After(now.Add(-p.Recover)) && !m.pausedUntil.After(now) {
		m.factor = min(1, m.factor*p.Step)
		m.lastStep = now
	}
	wasShared := m.sharedUntil.After(now)
	shared := wasShared || (m.holder != "" && m.holder != p.Holder)
	if shared && p.Horizon > 0 && m.tat.After(now.Add(p.Horizon)) && !m.pausedUntil.After(now) {
		return store.Slot{In: m.tat.Sub(now), Factor: m.factor, DBNow: now, Shared: true}, nil
	}
	at := maxTime(m.tat, now.Add(p.Lead), m.pausedUntil)
	iv := p.AloneInterval
	if shared {
		iv = p.Interval
		if !wasShared {
			at = at.Add(p.Handover)
		}
		m.sharedUntil = at.Add(p.SharedFor)
	}
	m.holder = p.Holder
	m.tat = at.Add(time.Duration(float64(iv) / m.factor))
	var paused time.Duration
	if m.pausedUntil.After(now) {
		paused = m.pausedUntil.Sub(now)
	}
	return store.Slot{In: at.Sub(now), Factor: m.factor, Paused: paused, DBNow: now, Shared: shared, Reserved: true}, nil
}

func (m *memSchedule) DelaySlots(_ context.Context, _ string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delays++
	m.tat = m.tat.Add(d)
	return nil
}

func (m *memSchedule) PauseScope(_ context.Context, _ string, d time.Duration, minFactor float64) (float64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.db()
	if !m.pausedUntil.After(now) {
		m.factor = max(m.factor/2, minFactor)
	}
	m.lastStep = now
	m.pausedUntil = maxTime(m.pausedUntil, now.Add(d))
	m.tat = maxTime(m.tat, now.Add(d))
	return m.factor, nil
}

func (m *memSchedule) ReadPacer(context.Context, string) (float64, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var paused time.Duration
	if now := m.db(); m.pausedUntil.After(now) {
		paused = m.pausedUntil.Sub(now)
	}
	return m.factor, paused, nil
}

func maxTime(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

// nextTimer is when the earliest pending timer fires (ok false: none).
func (c *fakeClock) nextTimer() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var at time.Time
	for _, t := range c.timers {
		if !t.fired && (at.IsZero() || t.at.Before(at)) {
			at = t.at
		}
	}
	return at, !at.IsZero()
}

// run calls fn in a goroutine and moves the clock to each timer it waits
// on until fn returns: a blocking call's whole timeline, in no real time.
func (c *fakeClock) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for {
		select {
		case <-done:
			return
		case <-c.waiters:
		case <-time.After(time.Millisecond):
		}
		if at, ok := c.nextTimer(); ok {
			c.Advance(at.Sub(c.Now()))
		}
	}
}
