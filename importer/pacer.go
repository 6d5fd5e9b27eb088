package importer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
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
// requests/s that is 7 tiny updates a second, on a logged table (a crash
// of the database must not empty it: migration 003).
//
// A 429 pauses the scope: paused_until holds every slot back, and the rate
// steps down (halved, down to 1/16) and recovers by 1.25 after each quiet
// 30 seconds.
//
// The margin between slots is for processes that share the scope: one
// cannot know how late another's request went out. A process alone on the
// scope (the schedule says so: no other pacer reserved lately) keeps its own
// requests a second apart with its spacing ring (spaced), whatever their
// lateness, so its slots need only the network's share of the margin and
// it gives up no slot for being a few milliseconds late: the rate is spent
// to 99.3% at --rate 7 instead of about 98.5%.
//
// A request that reached the API later than its shared slot allows (late
// out of the process, or picked up late by the API: its answer begins
// late too) moves the schedule on by the difference, so that the request
// R slots after it, whichever process sends it, does not crowd its second.
// While slots are reserved less than about a second ahead that move comes
// in time, and a shared slot up to maxLate late is used rather than given
// up (a slot given up costs a whole interval, a move its few milliseconds).

const (
	minFactor    = 1.0 / 16
	recoverEvery = 30 * time.Second
	recoverStep  = 1.25
	// With the scope shared, the margin and the lateness bound come from
	// what this process measures: how late its requests actually go out
	// after their slots (a loaded machine's timers wake late). A request
	// later than lateSlot, where the schedule cannot be moved on in time
	// (correctable), gives its slot up and takes the next free one: the
	// request R slots after it (another process's) might be on time, and
	// as the API counts them the R+1 requests must span more than a
	// second. The schedule makes them span a second plus the margin, which
	// covers lateSlot and a few milliseconds of jitter on the way
	// (netJitter). lateSlot follows the 99th percentile of recent lateness
	// (with room to spare), between minLate and maxLate: on a quiet
	// machine the rate is spent to about 98.6-99%, on a loaded one the
	// margin widens instead of slots being given up.
	minLate   = 2 * time.Millisecond
	maxLate   = 40 * time.Millisecond
	netJitter = 6 * time.Millisecond
	// aloneSlack: a lone pacer's R slots span a second plus netJitter plus
	// this, so that a late request's delay (which the ring passes on to the
	// request R slots on) fades by that much a second. A lone pacer gives a
	// slot up only when it is maxLate late. The first shared slot after a
	// lone pacer's comes handover later, and the scope counts as shared for
	// sharedFor after another pacer's slot.
	aloneSlack = time.Millisecond
	// rttNoise: a round trip longer than nine in ten lately by up to this
	// is taken as the way's usual jitter, which netJitter covers (wrote).
	rttNoise  = 2 * time.Millisecond
	handover  = maxLate + netJitter
	sharedFor = 2 * time.Second
	// The lead is how long before its slot a send is checkpointed as
	// "sending", so that the request itself goes out on time: twice the
	// 99th percentile of recent checkpoints (a database with slow commits),
	// at least minLead and at most maxLead. A send's slot is never closer
	// than that.
	minLead = 3 * time.Millisecond
	maxLead = 2 * time.Second
	// horizonSlack: what the horizon keeps besides the move's way (see
	// horizon); minHorizon: a slot is never reserved less than this beyond
	// the lead.
	horizonSlack = 100 * time.Millisecond
	minHorizon   = 100 * time.Millisecond
	// blockSpan: a process reserves the slots of about this span in one
	// round trip (10 at 1,000 requests/s; one at a time up to 100/s).
	blockSpan = 10 * time.Millisecond
)

// schedule is the scope's rate schedule as the pacer uses it: the store's
// statements in production (in the database's clock, shared by every
// process), an in-memory GCRA over a fake clock in the pacer's unit tests.
type schedule interface {
	ReserveSlot(ctx context.Context, p store.SlotParams) (store.Slot, error)
	DelaySlots(ctx context.Context, scope string, d time.Duration) error
	PauseScope(ctx context.Context, scope string, d time.Duration, minFactor float64) (float64, error)
	ReadPacer(ctx context.Context, scope string) (factor float64, paused time.Duration, err error)
}

// pacer hands out the slots of one scope's schedule to this process.
type pacer struct {
	sched schedule
	clock Clock
	scope string
	rate  float64 // requests/s at full speed; <= 0: unlimited
	// workers: the most requests this process has in flight at once (the
	// pool's size at most, for leadBudget); 0: not known.
	workers int
	holder  string // this pacer, as the schedule knows it
	withDB  func(ctx context.Context, what string, fn func(context.Context) error) error

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
	moves    atomic.Int64 // times the schedule was moved on after a late request
	// shallow: the last slot reserved was correctable; clockRTT: the round
	// trip dbClock is read through (for sharedJitter, without mu).
	shallow     atomic.Bool
	clockRTT    atomic.Int64
	spacedWaits atomic.Int64 // requests held back by the spacing ring
	checkpoints durations    // how long sends' checkpoints took
	// block holds the slots reserved together, not handed out yet (our
	// clock), in order; blockMu also makes a process's reservations one at
	// a time.
	blockMu sync.Mutex
	block   []slot
	// reserveAfter: with the scope shared, no slot is reserved before this
	// (the next slot, as far as this process knows, less the horizon).
	reserveAfter time.Time
	lateness     durations // how late requests went out after their slots

	// spacing is the belt to the schedule's braces: the write times of this
	// process's last ceil(rate) requests, so that none goes out as the
	// ceil(rate)+1-th within a second, whatever stalled the one before.
	spacingMu sync.Mutex
	writes    []time.Time // a ring; zero: free
	writeN    uint64      // requests spaced so far; writes[writeN%len] is the oldest
	rtts      durations   // round trips to the answer's first byte
}

func newPacer(sched schedule, clock Clock, scope string, rate float64, withDB func(context.Context, string, func(context.Context) error) error) *pacer {
	p := &pacer{sched: sched, clock: clock, scope: scope, rate: rate, withDB: withDB, factor: 1, holder: rand.Text()}
	if rate > 0 {
		p.writes = make([]time.Time, int(math.Ceil(rate)))
	}
	return p
}

// spaced waits, when it must, until a request written now cannot be the
// ceil(rate)+1-th of this process's requests within a second plus
// netJitter, and takes its place in the ring. The schedule spaces slots
// with a margin that covers the lateness measured lately (its 99th
// percentile); a request stalled longer than that after its slot check (a
// descheduled process, a new connection) would otherwise let the one
// ceil(rate) slots after it, on time, crowd a second: seen as 8 requests
// in one second at --rate 7 (bench-send's single case). It returns the
// place for wrote, and an error only when ctx ends.
func (p *pacer) spaced(ctx context.Context) (uint64, error) {
	if len(p.writes) == 0 {
		return 0, nil
	}
	p.spacingMu.Lock()
	n := p.writeN
	p.writeN++
	i := n % uint64(len(p.writes))
	now := p.clock.Now()
	at := now
	if oldest := p.writes[i]; !oldest.IsZero() {
		at = later(now, oldest.Add(time.Second+netJitter))
	}
	p.writes[i] = at // provisional: wrote puts the actual time
	p.spacingMu.Unlock()
	if d := at.Sub(now); d > 0 {
		p.spacedWaits.Add(1)
		t := p.clock.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-t.C():
		}
	}
	return n, nil
}

// wrote records when the request spaced as n, in slot s, was written
// (flushed to the wire), if later than its place said, and rtt, how long
// its answer took to begin (0: none came). The API counts a request when it
// reaches it, which is not always right after the write: a busy server
// picks it up late, or accepts a new connection late (seen at kommo-sim:
// 10 ms, where requests usually arrive within half a millisecond, and 21
// requests in one second at --rate 20, none more than 20 as written). The
// answer cannot begin before the request reached the API, so a round trip
// longer than nine in ten lately (their 90th percentile) by more than
// rttNoise says by how much it may have reached it late, up to maxLate:
// the ring counts the request as written that much later, and the one
// ceil(rate) after it waits. Not longer than the quickest: an API whose
// own work varies would look late on almost every request
// (TestAVaryingAPIIsNotALateOne).
//
// The ring spaces this process's requests only. In a shared scope the
// request R slots on may be another process's: wrote returns how much
// later than its slot's allowance the request reached the API (as far as
// this process can tell), and the caller moves the schedule on by that
// much (delay), before that slot is reserved as long as slots are
// reserved less than about a second ahead (correctable). Without it, a
// request that reached kommo-sim 21-56 ms late let 31 requests into one
// second at --rate 30 with two processes, in two of three runs.
func (p *pacer) wrote(n uint64, s slot, t time.Time, rtt time.Duration) time.Duration {
	if len(p.writes) == 0 {
		return 0
	}
	if rtt > 0 {
		if excess := rtt - p.rtts.usual(); excess > rttNoise {
			t = t.Add(min(excess, maxLate))
		}
		p.rtts.add(rtt)
	}
	p.spacingMu.Lock()
	defer p.spacingMu.Unlock()
	if p.writeN-n <= uint64(len(p.writes)) { // else its place was taken again already
		if i := n % uint64(len(p.writes)); t.After(p.writes[i]) {
			p.writes[i] = t
		}
	}
	if !s.shared {
		return 0
	}
	return max(t.Sub(s.at)-s.allow, 0)
}

// delay moves the scope's slots not yet reserved d on: a request of this
// process reached the API later than its slot's allowance (wrote).
func (p *pacer) delay(ctx context.Context, d time.Duration) error {
	p.moves.Add(1)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.sched.DelaySlots(ctx, p.scope, d)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// slot is a reserved send time, in this process's clock; shared: another
// process reserves slots of the scope too. reserved is when it was
// reserved, allow how late its request may reach the API within the
// schedule's margin (lateSlot then; the margin's netJitter is for what this
// process cannot measure).
type slot struct {
	at       time.Time
	shared   bool
	reserved time.Time
	allow    time.Duration
}

// interval is the spacing of slots at full speed, the scope shared, with
// the margin: R slots span a second plus lateSlot plus sharedJitter.
func (p *pacer) interval() time.Duration {
	return time.Duration((float64(time.Second) + float64(p.lateSlot()+p.sharedJitter())) / p.rate)
}

// sharedJitter is the part of a shared slot's margin for what this process
// cannot measure of its requests' way to the API: netJitter, unless the
// schedule is moved on after a late request in time (the last slot
// reserved was correctable). Then it is only the arrival jitter within
// rttNoise (wrote counts more) and the two processes' mappings of the
// database's clock (each off by up to half its quickest round trip to it:
// this one's, taken for both), with a millisecond to spare: about 3.5 ms
// with a local database, which spends 0.25% more of the rate at --rate 30
// with two processes.
func (p *pacer) sharedJitter() time.Duration {
	if !p.shallow.Load() {
		return netJitter
	}
	return min(rttNoise+time.Duration(p.clockRTT.Load())+time.Millisecond, netJitter)
}

// aloneInterval is the spacing of slots at full speed when this pacer has
// the scope to itself: R slots span a second plus netJitter plus
// aloneSlack.
func (p *pacer) aloneInterval() time.Duration {
	return time.Duration((float64(time.Second) + float64(netJitter+aloneSlack)) / p.rate)
}

// lead is how long before a send's slot its checkpoint starts: twice the
// 99th percentile of the checkpoints lately (a slow database), so that one
// slow commit does not push every slot after it away. It never takes more
// than the workers can give (leadBudget): a database that stalled for a
// second once filled the tail with 1 s checkpoints, and a lead of 2 s left
// 8 workers about 3.9 requests/s at --rate 20 until they left the window.
func (p *pacer) lead() time.Duration {
	l := min(max(2*p.checkpoints.p99(), minLead), maxLead)
	if b, ok := p.leadBudget(); ok {
		l = min(l, b)
	}
	return l
}

// leadBudget is the longest lead with which the workers still spend the
// rate, by Little's law: a worker is busy with a message for the lead, the
// request and the checkpoint after it, so W workers make R requests/s only
// while that cycle is at most W/R; two thirds of it, as the pool sizes
// itself with half again for jitter. At least minLead; not ok when the
// pacer has no rate or no known pool.
func (p *pacer) leadBudget() (time.Duration, bool) {
	if p.workers <= 0 || p.rate <= 0 {
		return 0, false
	}
	cycle := time.Duration(float64(p.workers) / p.rate * float64(time.Second) * 2 / 3)
	return max(cycle-p.rtts.usual()-p.checkpoints.usual(), minLead), true
}

// lateSlot is how late a request may go out after its slot: the 99th
// percentile of the lateness measured lately, with half again for room,
// within [minLate, maxLate].
func (p *pacer) lateSlot() time.Duration {
	return min(max(p.lateness.p99()*3/2, minLate), maxLate)
}

// checkpointTook records how long a send's checkpoint took, for lead.
func (p *pacer) checkpointTook(d time.Duration) { p.checkpoints.add(d) }

// reserve takes the scope's next slot, at least lead from now. It waits out
// database outages (as withDB does) and never sends: the caller waits for
// the slot.
func (p *pacer) reserve(ctx context.Context, lead time.Duration) (slot, error) {
	if p.rate <= 0 {
		return slot{at: p.clock.Now()}, nil
	}
	p.blockMu.Lock()
	defer p.blockMu.Unlock()
	// A slot of the block reserved last, if one is still ahead of the lead.
	now := p.clock.Now()
	for len(p.block) > 0 {
		s := p.block[0]
		p.block = p.block[1:]
		if !s.at.Before(now.Add(lead)) {
			return s, nil
		}
		// A slot of the block nobody took in time: the workers are fewer
		// than the rate needs (the pool grows), or the machine is busy.
	}
	// Not further ahead than the horizon: wait until the last slot
	// reserved is that near.
	if err := p.sleep(ctx, p.reserveAfter.Sub(now)); err != nil {
		return slot{}, err
	}
	// At high rates the slots of about blockSpan are reserved at once: one
	// round trip to the schedule for several requests.
	shared := p.interval()
	k := max(1, int(blockSpan/shared))
	var s store.Slot
	var sent, received time.Time
	for {
		h := p.horizon(lead)
		err := p.withDB(ctx, "rate schedule", func(ctx context.Context) (err error) {
			sent = p.clock.Now()
			s, err = p.sched.ReserveSlot(ctx, store.SlotParams{Scope: p.scope, Holder: p.holder,
				Interval: time.Duration(k) * shared, AloneInterval: time.Duration(k) * p.aloneInterval(),
				Handover: handover, SharedFor: sharedFor, Lead: lead, Horizon: h, Recover: recoverEvery, Step: recoverStep})
			received = p.clock.Now()
			if isNoRows(err) {
				// The schedule's row came in meanwhile (another process's
				// first reservation): ask again.
				s, err = store.Slot{}, nil
			}
			return err
		})
		if err != nil {
			return slot{}, fmt.Errorf("rate schedule: %w", err)
		}
		if s.Reserved {
			break
		}
		// The scope is shared and its next free slot further than the
		// horizon (the other processes took the ones before): wait until it
		// is that near, so that every shared slot stays correctable.
		if err := p.sleep(ctx, max(s.In-h, time.Millisecond)); err != nil {
			return slot{}, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.factor = s.Factor
	p.dbClock.observe(sent, received, s.DBNow)
	if s.Paused > 0 {
		p.setPauseLocked(received.Add(s.Paused))
	}
	p.clockRTT.Store(int64(p.dbClock.rtt))
	first := slot{at: p.dbClock.local(s.DBNow.Add(s.In)), shared: s.Shared, reserved: received, allow: p.lateSlot()}
	p.shallow.Store(p.correctable(first))
	iv := p.aloneInterval()
	if s.Shared {
		iv = shared
	}
	step := time.Duration(float64(iv) / s.Factor)
	last := first
	for i := 1; i < k; i++ {
		last.at = first.at.Add(time.Duration(i) * step)
		p.block = append(p.block, last)
	}
	p.reserveAfter = time.Time{}
	if s.Shared {
		// The next slot comes step after the last one.
		p.reserveAfter = last.at.Add(step - p.horizon(lead))
	}
	return first, nil
}

// sleep waits d (nothing when d <= 0), or until ctx ends.
func (p *pacer) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := p.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
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
// pause (a 429 may have arrived while the caller waited), and not late:
// later than maxLate when this pacer has the scope to itself (its spacing
// ring holds the requests after a late one back as far as they must be),
// or when the scope is shared and the schedule can be moved on in time
// (correctable); later than lateSlot otherwise.
func (p *pacer) usable(s slot) bool {
	if p.paused() {
		return false
	}
	if p.rate <= 0 {
		return true
	}
	late, limit := p.clock.Now().Sub(s.at), maxLate
	if s.shared && !p.correctable(s) {
		limit = p.lateSlot()
	}
	p.lateness.add(max(late, 0)) // for later slots: this one is judged by what came before
	if late > limit {
		p.late.Add(1)
		return false
	}
	return true
}

// writable reports, right before a request is written, whether it may
// still be: no 429 has paused the schedule since, and it comes at most
// maxLate after released, when attempt let it go on time. Later, it would
// land on top of the slots that came meanwhile: it is given up (and
// counted as such).
func (p *pacer) writable(released time.Time) bool {
	if p.paused() {
		return false
	}
	if p.rate > 0 && p.clock.Now().Sub(released) > maxLate {
		p.late.Add(1)
		return false
	}
	return true
}

// correctable reports whether a request in shared slot s, up to maxLate
// late, can move the schedule on (delay) before the slot R on is
// reserved: slots are reserved about as far ahead as s was (every process
// draws from the one schedule), and the move comes after the request's
// answer began (its round trip, the 99th percentile lately) and a write to
// the database (a checkpoint's 99th percentile). Two processes at Kommo's
// 7/s with round trips of a few hundred milliseconds can reserve more than
// a second ahead (each one's pool is sized for the whole rate): there a
// late slot is given up, as before.
func (p *pacer) correctable(s slot) bool {
	reach := s.at.Sub(s.reserved) + maxLate + p.rtts.p99() + p.checkpoints.p99()
	return reach < time.Second
}

// horizon is how far ahead of now a process reserves slots when the scope
// is shared: near enough that a late request's move (delay) reaches the
// schedule before the slot R on is reserved (correctable), with
// horizonSlack to spare, and at least minHorizon beyond the lead. Every
// process sizes its pool for the whole rate, so without it two processes
// at Kommo's 7/s with 120-200 ms round trips held slots 2 s ahead, the
// move came too late, and a request that reached the API 80 ms late made
// 8 in a second (README, "Slots are reserved at most about a second
// ahead"). A worker that would reserve further ahead waits; the rate is
// spent as long as one waits at the horizon.
func (p *pacer) horizon(lead time.Duration) time.Duration {
	h := time.Second - (maxLate + p.rtts.p99() + p.checkpoints.p99() + horizonSlack)
	return max(h, lead+minHorizon)
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

// Late is the number of slots given up for being missed by more than
// maxLate, or lateSlot when the schedule could not be moved on in time.
func (p *pacer) Late() int64 { return p.late.Load() }

// Moves is the number of times a late request moved the schedule on.
func (p *pacer) Moves() int64 { return p.moves.Load() }

// Waited is the time spent waiting for slots.
func (p *pacer) Waited() time.Duration { return time.Duration(p.waited.Load()) }

// durations keeps the last latenessWindow durations (latenesses of
// requests after their slots, checkpoints, round trips), for their 90th
// and 99th percentiles.
type durations struct {
	mu   sync.Mutex
	ring [latenessWindow]time.Duration
	n    int
	p    time.Duration // cached 99th percentile
	p90  time.Duration // cached 90th percentile
	next int           // at n == next, the percentiles are computed again
}

const latenessWindow = 512

func (l *durations) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.n%latenessWindow] = d
	l.n++
	// Every time while there are few, so that the first ones do not stand
	// for all.
	if l.n >= l.next || l.n <= 64 {
		l.p90, l.p = l.percentilesLocked(0.90, 0.99)
		l.next = l.n + 32
	}
}

// usual is the 90th percentile: nine in ten lately took no longer.
func (l *durations) usual() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p90
}

func (l *durations) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

// percentilesLocked returns the q1 and q2 quantiles of the durations kept.
func (l *durations) percentilesLocked(q1, q2 float64) (time.Duration, time.Duration) {
	n := min(l.n, latenessWindow)
	if n == 0 {
		return 0, 0
	}
	s := make([]time.Duration, n)
	copy(s, l.ring[:n])
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(int(q*float64(n)), n-1)] }
	return at(q1), at(q2)
}
