package importer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// reserveSlot takes the scope's next slot, at least $5 seconds from now, for
// a request whose interval at full speed is $2 seconds. It returns how far
// the slot is from now, the factor in force and the seconds left of a
// pause, all in the database's time.
const reserveSlot = `
INSERT INTO kommo_import_pacer AS p (scope_id, tat) VALUES ($1, now() + make_interval(secs => $5::float8 + $2::float8))
ON CONFLICT (scope_id) DO UPDATE SET
    factor = CASE WHEN p.factor < 1 AND p.last_step <= now() - make_interval(secs => $3) AND COALESCE(p.paused_until, '-infinity') < now()
                  THEN least(1, p.factor * $4) ELSE p.factor END,
    last_step = CASE WHEN p.factor < 1 AND p.last_step <= now() - make_interval(secs => $3) AND COALESCE(p.paused_until, '-infinity') < now()
                     THEN now() ELSE p.last_step END,
    tat = GREATEST(p.tat, now() + make_interval(secs => $5), COALESCE(p.paused_until, now()))
        + make_interval(secs => $2 / CASE WHEN p.factor < 1 AND p.last_step <= now() - make_interval(secs => $3) AND COALESCE(p.paused_until, '-infinity') < now()
                                          THEN least(1, p.factor * $4) ELSE p.factor END)
RETURNING GREATEST(extract(epoch FROM tat - now())::float8 - $2 / factor, 0), factor,
    GREATEST(COALESCE(extract(epoch FROM paused_until - now())::float8, 0), 0), extract(epoch FROM now())::float8`

// pauseScope records a 429: no slot before now + $2 seconds, and the rate
// halved unless a pause is already in force (one step per episode).
const pauseScope = `
INSERT INTO kommo_import_pacer AS p (scope_id, tat, factor, last_step, paused_until)
VALUES ($1, now() + make_interval(secs => $2), 0.5, now(), now() + make_interval(secs => $2))
ON CONFLICT (scope_id) DO UPDATE SET
    factor = CASE WHEN COALESCE(p.paused_until, '-infinity') < now() THEN GREATEST(p.factor / 2, $3) ELSE p.factor END,
    last_step = now(),
    paused_until = GREATEST(COALESCE(p.paused_until, now()), now() + make_interval(secs => $2)),
    tat = GREATEST(p.tat, now() + make_interval(secs => $2))
RETURNING factor`

// readPacer reads the scope's schedule without taking a slot (heartbeats).
const readPacer = `
SELECT factor, GREATEST(COALESCE(extract(epoch FROM paused_until - now())::float8, 0), 0)
FROM kommo_import_pacer WHERE scope_id = $1`

// pacer hands out the slots of one scope's schedule to this process.
type pacer struct {
	pool   *pgxpool.Pool
	scope  string
	rate   float64 // requests/s at full speed; <= 0: unlimited
	withDB func(ctx context.Context, what string, fn func(context.Context) error) error

	mu          sync.Mutex
	factor      float64
	pausedUntil time.Time // local time
	// clock maps the database's clock to ours (NTP's way: the midpoint of
	// the quickest round trip seen lately), so that slots become local
	// times that neither the jitter of one answer nor another process's
	// view can move by more than that round trip's half.
	clock clockSample

	requests atomic.Int64
	waited   atomic.Int64 // nanoseconds
	late     atomic.Int64 // slots given up for being late
	slowest  atomic.Int64 // decaying maximum of a send's checkpoint, nanoseconds
}

func newPacer(pool *pgxpool.Pool, scope string, rate float64, withDB func(context.Context, string, func(context.Context) error) error) *pacer {
	return &pacer{pool: pool, scope: scope, rate: rate, withDB: withDB, factor: 1}
}

// slot is a reserved send time, in this process's clock.
type slot struct{ at time.Time }

// interval is the spacing of slots at full speed, with the margin.
func (p *pacer) interval() float64 { return rateMargin / p.rate }

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
		return slot{at: time.Now()}, nil
	}
	var delay, factor, paused, dbNow float64
	var sent, received time.Time
	err := p.withDB(ctx, "rate schedule", func(ctx context.Context) error {
		sent = time.Now()
		err := p.pool.QueryRow(ctx, reserveSlot, p.scope, p.interval(), recoverEvery.Seconds(), recoverStep, lead.Seconds()).Scan(&delay, &factor, &paused, &dbNow)
		received = time.Now()
		return err
	})
	if err != nil {
		return slot{}, fmt.Errorf("rate schedule: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.factor = factor
	db := time.Unix(0, int64(dbNow*1e9))
	p.clock.observe(sent, received, db)
	if paused > 0 {
		p.setPauseLocked(received.Add(secs(paused)))
	}
	return slot{at: p.clock.local(db.Add(secs(delay)))}, nil
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
	d := time.Until(s.at) - lead
	if d <= 0 {
		return true, nil
	}
	start := time.Now()
	defer func() { p.waited.Add(int64(time.Since(start))) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-stop:
		return false, nil
	case <-t.C:
		return true, nil
	}
}

// errHalted is returned by Wait when stop was closed first.
var errHalted = errors.New("stopping")

// Wait takes a slot and sleeps until it: the gate every look-up passes. A
// closed stop (a soft stop; nil: none) ends the wait with errHalted.
func (p *pacer) Wait(ctx context.Context, stop <-chan struct{}) error {
	for {
		s, err := p.reserve(ctx, 0)
		if err != nil {
			return err
		}
		if ok, err := p.waitUntil(ctx, s, 0, stop); err != nil {
			return err
		} else if !ok {
			return errHalted
		}
		if p.usable(s) {
			p.requests.Add(1)
			return nil
		}
	}
}

// usable reports whether a request may go out now in slot s: not into a
// pause (a 429 may have arrived while the caller waited), and not late.
func (p *pacer) usable(s slot) bool {
	if p.paused() {
		return false
	}
	if late := time.Since(s.at); p.rate > 0 && late > lateSlot {
		p.late.Add(1)
		return false
	}
	return true
}

// taken counts a slot used for a request (sends use reserve and waitUntil
// themselves, and count here).
func (p *pacer) taken() { p.requests.Add(1) }

// pause records a 429 for the scope: every process holds its requests
// until the pause ends, and the rate steps down.
func (p *pacer) pause(ctx context.Context, d time.Duration) error {
	p.mu.Lock()
	p.setPauseLocked(time.Now().Add(d))
	p.mu.Unlock()
	if p.rate <= 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var factor float64
	if err := p.pool.QueryRow(cctx, pauseScope, p.scope, d.Seconds(), minFactor).Scan(&factor); err != nil {
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
	var factor, paused float64
	err := p.pool.QueryRow(ctx, readPacer, p.scope).Scan(&factor, &paused)
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
		p.setPauseLocked(time.Now().Add(secs(paused)))
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
	return time.Now().Before(p.pausedUntil)
}

// PausedUntil is the end of the pause in force, or the zero time.
func (p *pacer) PausedUntil() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Now().After(p.pausedUntil) {
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

func secs(s float64) time.Duration {
	if s > math.MaxInt64/1e9 {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}
