package importer

import (
	"context"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// The worker pool keeps as many conversations in flight as the rate needs,
// by Little's law: a worker is busy with a message for its cycle time (the
// checkpoints, the request, the claim of its conversation: everything but
// the wait for its slot), so about rate × cycle workers keep the schedule
// full. Too few leave slots unused (a run at --rate 40 against a 20 ms API
// with 8 fixed workers spent 84% of it); too many hold conversations and
// connections for nothing. The pool starts small, measures the cycle, and
// grows or shrinks each second between 1 and Config.Workers.

// poolStart is how many workers start; poolTick how often the size is
// decided again.
const (
	poolStart = 8
	poolTick  = time.Second
)

// cycles measures the workers' busy time per message dealt with.
type cycles struct {
	busy     atomic.Int64 // nanoseconds of work, slot waits excluded
	messages atomic.Int64
	idle     atomic.Int64 // claims that found nothing
}

// add records busy time spent on n messages.
func (c *cycles) add(d time.Duration, n int) {
	c.busy.Add(int64(d))
	c.messages.Add(int64(n))
}

// pool runs the workers of one process.
type pool struct {
	im      *Importer
	max     int
	desired atomic.Int64
	g       errgroup.Group
	mu      sync.Mutex
	started int // workers started so far (their indexes are 0..started-1)
	running atomic.Int64
}

// want is the number of workers for a measured cycle at the rate in force:
// rate × cycle with half again for jitter, and two more so that a slot
// never waits for a worker to come back; all of them without a rate.
func want(rate float64, cycle time.Duration, most int) int {
	if rate <= 0 {
		return most
	}
	n := int(math.Ceil(rate*cycle.Seconds()*1.5)) + 2
	return min(max(n, 1), most)
}

// spawn starts workers up to the desired number. It is called before the
// pool is waited for, and by running workers (never by steer): a worker
// started by a running one is counted before the pool's Wait can return.
func (p *pool) spawn(ctx context.Context, halt <-chan struct{}, stop func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for int(p.running.Load()) < int(p.desired.Load()) {
		i := p.started
		p.started++
		p.running.Add(1)
		// Leases are held per worker, not per process: the markSending lease
		// check then keeps even two workers of one process off one conversation.
		owner := p.im.procID + "#" + strconv.Itoa(i)
		p.g.Go(func() error {
			defer p.running.Add(-1)
			err := p.im.worker(ctx, owner, halt, p, stop)
			if err != nil {
				stop()
			}
			return err
		})
	}
}

// surplus reports whether a worker should end: more run than desired. The
// caller's own end makes room, so several may see it at once; the next
// spawn makes up for it.
func (p *pool) surplus() bool { return p.running.Load() > p.desired.Load() }

// steer decides the pool's size every poolTick from the cycle measured over
// the last tick, until done is closed; the workers spawn and end to match.
func (p *pool) steer(halt <-chan struct{}, done <-chan struct{}) {
	t := time.NewTicker(poolTick)
	defer t.Stop()
	c := &p.im.cycles
	for {
		select {
		case <-done:
			return
		case <-halt:
			return
		case <-t.C:
		}
		busy, n, idle := c.busy.Swap(0), c.messages.Swap(0), c.idle.Swap(0)
		if n == 0 {
			continue // nothing measured
		}
		if idle > 0 && want(p.im.pacer.Rate(), time.Duration(busy/n), p.max) > int(p.desired.Load()) {
			continue // workers found nothing to claim: more would find nothing either
		}
		d := want(p.im.pacer.Rate(), time.Duration(busy/n), p.max)
		if int64(d) != p.desired.Load() {
			p.im.log.Debug("workers", "from", p.desired.Load(), "to", d, "cycle_seconds", time.Duration(busy/n).Seconds())
		}
		p.desired.Store(int64(d))
		p.im.stats.workers.Store(int64(d))
	}
}
