package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// The rate is one schedule per scope, kept in PostgreSQL so that every
// process and run sending to the scope draws from it: a GCRA row whose tat
// (theoretical arrival time) is the next free slot. Each request takes the
// slot at max(tat, now) and moves tat one interval on, so as the API sees
// it requests are an interval apart whichever process sends them, a dead or
// idle process holds no share, and a newcomer needs no settling pause. At 7
// requests/s that is 7 tiny updates a second, on an unlogged table.
//
// A 429 pauses the scope: paused_until holds every slot back, and the rate
// steps down (halved, down to 1/16) and recovers by 1.25 after each quiet
// 30 seconds.

const (
	minFactor    = 1.0 / 16
	recoverEvery = 30 * time.Second
	recoverStep  = 1.25
	// rateMargin widens the interval a little: R+1 requests span 8 ms more
	// than a second, so that a request up to lateSlot late, plus a few
	// milliseconds of jitter on its way, cannot put R+1 requests into one
	// second as the API counts them. It costs 0.8% of the rate.
	rateMargin = 1.008
	// slotLead is how long before its slot a send is checkpointed as
	// "sending", so that the request itself goes out on time: at least
	// minLead, and twice the slowest recent checkpoint (a database with slow
	// commits), up to maxLead. A send's slot is never closer than that.
	minLead = 50 * time.Millisecond
	maxLead = 2 * time.Second
	// lateSlot is how late a request may go out after its slot. A request
	// later than that (a slow checkpoint, a loaded machine) would crowd the
	// one R slots after it into the same second as the API counts them: it
	// gives its slot up and takes the next free one instead.
	lateSlot = 4 * time.Millisecond
)

// schedule is the scope's rate schedule as the pacer uses it: the store's
// statements in production (in the database's clock, shared by every
// process), an in-memory GCRA over a fake clock in the pacer's unit tests.
type schedule interface {
	ReserveSlot(ctx context.Context, p store.SlotParams) (store.Slot, error)
	PauseScope(ctx context.Context, scope string, d time.Duration, minFactor float64) (float64, error)
	ReadPacer(ctx context.Context, scope string) (factor float64, paused time.Duration, err error)
}

// pacer hands out the slots of one scope's schedule to this process.
type pacer struct {
	sched  schedule
	clock  Clock
	scope  string
	rate   float64 // requests/s at full speed; <= 0: unlimited
	withDB func(ctx context.Context, what string, fn func(context.Context) error) error

	mu          sync.Mutex
	factor      float64
	pausedUntil time.Time // local time
	// dbClock maps the database's clock to ours (NTP's way: the midpoint of
	// the quickest round trip seen lately), so that slots become local
	// times that neither the jitter of one answer nor another process's
	// view can move by more than that round trip's half.
	dbClock clockSample

	requests atomic.Int64
	waited   atomic.Int64 // nanoseconds
	late     atomic.Int64 // slots given up for being late
	slowest  atomic.Int64 // decaying maximum of a send's checkpoint, nanoseconds
}

func newPacer(sched schedule, clock Clock, scope string, rate float64, withDB func(context.Context, string, func(context.Context) error) error) *pacer {
	return &pacer{sched: sched, clock: clock, scope: scope, rate: rate, withDB: withDB, factor: 1}
}

// slot is a reserved send time, in this process's clock.
type slot struct{ at time.Time }

// interval is the spacing of slots at full speed, with the margin.
func (p *pacer) interval() time.Duration {
	return time.Duration(rateMargin / p.rate * float64(time.Second))
}

// lead is how long before a send's slot its checkpoint starts.
func (p *pacer) lead() time.Duration {
	return min(max(2*time.Duration(p.slowest.Load()), minLead), maxLead)
}

// checkpointTook records how long a send's checkpoint took, for lead: the
// slowest recent one counts, older ones fade.
func (p *pacer) checkpointTook(d time.Duration) {
	for {
		old := p.slowest.Load()
		next := max(int64(d), old-old/20)
		if p.slowest.CompareAndSwap(old, next) {
			return
		}
	}
}

// reserve takes the scope's next slot, at least lead from now. It waits out
// database outages (as withDB does) and never sends: the caller waits for
// the slot.
func (p *pacer) reserve(ctx context.Context, lead time.Duration) (slot, error) {
	if p.rate <= 0 {
		return slot{at: p.clock.Now()}, nil
	}
	var s store.Slot
	var sent, received time.Time
	err := p.withDB(ctx, "rate schedule", func(ctx context.Context) (err error) {
		sent = p.clock.Now()
		s, err = p.sched.ReserveSlot(ctx, store.SlotParams{Scope: p.scope, Interval: p.interval(), Lead: lead, Recover: recoverEvery, Step: recoverStep})
		received = p.clock.Now()
		return err
	})
	if err != nil {
		return slot{}, fmt.Errorf("rate schedule: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.factor = s.Factor
	p.dbClock.observe(sent, received, s.DBNow)
	if s.Paused > 0 {
		p.setPauseLocked(received.Add(s.Paused))
	}
	return slot{at: p.dbClock.local(s.DBNow.Add(s.In))}, nil
}

// clockSample is the round trip the database's clock is read through.
type clockSample struct {
	rtt    time.Duration
	offset time.Duration // our clock minus the database's
	at     time.Time     // when it was taken (ours)
}

// observe takes a reading (sent, received: ours; db: the database's now()
// in between) when its round trip is the quickest so far, or when the
// quickest is a minute old and this one is close to it.
func (c *clockSample) observe(sent, received, db time.Time) {
	rtt := received.Sub(sent)
	mid := sent.Add(rtt / 2)
	stale := received.Sub(c.at) > time.Minute
	if c.at.IsZero() || rtt <= c.rtt || (stale && rtt <= max(2*c.rtt, 2*time.Millisecond)) {
		*c = clockSample{rtt: rtt, offset: mid.Sub(db), at: received}
	}
}

// local is the database time t in our clock.
func (c *clockSample) local(t time.Time) time.Time { return t.Add(c.offset) }

// waitUntil sleeps until lead before the slot, or until ctx ends or stop is
// closed (then false).
func (p *pacer) waitUntil(ctx context.Context, s slot, lead time.Duration, stop <-chan struct{}) (bool, error) {
	start := p.clock.Now()
	d := s.at.Sub(start) - lead
	if d <= 0 {
		return true, nil
	}
	defer func() { p.waited.Add(int64(p.clock.Now().Sub(start))) }()
	t := p.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-stop:
		return false, nil
	case <-t.C():
		return true, nil
	}
}

// errHalted: a soft stop came while a request waited for its slot.
var errHalted = errors.New("stopping")

// usable reports whether a request may go out now in slot s: not into a
// pause (a 429 may have arrived while the caller waited), and not late.
func (p *pacer) usable(s slot) bool {
	if p.paused() {
		return false
	}
	if late := p.clock.Now().Sub(s.at); p.rate > 0 && late > lateSlot {
		p.late.Add(1)
		return false
	}
	return true
}

// taken counts a slot used for a request.
func (p *pacer) taken() { p.requests.Add(1) }

// pause records a 429 for the scope: every process holds its requests
// until the pause ends, and the rate steps down.
func (p *pacer) pause(ctx context.Context, d time.Duration) error {
	p.mu.Lock()
	p.setPauseLocked(p.clock.Now().Add(d))
	p.mu.Unlock()
	if p.rate <= 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	factor, err := p.sched.PauseScope(cctx, p.scope, d, minFactor)
	if err != nil {
		return fmt.Errorf("record pause: %w", err)
	}
	p.mu.Lock()
	p.factor = factor
	p.mu.Unlock()
	return nil
}

// refresh reads the scope's factor and pause (another process's 429).
func (p *pacer) refresh(ctx context.Context) error {
	if p.rate <= 0 {
		return nil
	}
	factor, paused, err := p.sched.ReadPacer(ctx, p.scope)
	if isNoRows(err) {
		return nil
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.factor = factor
	if paused > 0 {
		p.setPauseLocked(p.clock.Now().Add(paused))
	}
	return nil
}

func (p *pacer) setPauseLocked(t time.Time) {
	if t.After(p.pausedUntil) {
		p.pausedUntil = t
	}
}

func (p *pacer) paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clock.Now().Before(p.pausedUntil)
}

// PausedUntil is the end of the pause in force, or the zero time.
func (p *pacer) PausedUntil() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.clock.Now().After(p.pausedUntil) {
		return time.Time{}
	}
	return p.pausedUntil
}

// Rate is the rate in force (requests/s; 0: unlimited).
func (p *pacer) Rate() float64 {
	if p.rate <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate * p.factor
}

// Requests is the number of slots used so far by this process.
func (p *pacer) Requests() int64 { return p.requests.Load() }

// Late is the number of slots given up for being missed by more than lateSlot.
func (p *pacer) Late() int64 { return p.late.Load() }

// Waited is the time spent waiting for slots.
func (p *pacer) Waited() time.Duration { return time.Duration(p.waited.Load()) }

func secs(s float64) time.Duration { return store.Seconds(s) }
