package contacts

import (
	"context"
	"sync"
	"time"

	"github.com/kommo-import/kommo-import/kommoapi"
)

// Creator batches contact creation across concurrent conversations: each
// Create waits until its contact is made in a batch of up to
// kommoapi.MaxBatch, sent when it is full or linger after its first item.
// Conversations of one client (one request_id) share one item, in flight or
// done: a request_id is created once in the Creator's life. A worker that
// needs a contact therefore waits at most linger plus one request, and a
// thousand new clients cost twenty requests, not a thousand.
type Creator struct {
	m      *Matcher
	ctx    context.Context
	linger time.Duration

	// before is the checkpoint of each batch's request (BeforeRequest).
	before func(ctx context.Context, requestIDs []string) error

	mu      sync.Mutex
	pending []*pendingCreate
	byID    map[string]*pendingCreate // pending, in flight, or created
	timer   *time.Timer
}

type pendingCreate struct {
	nc   kommoapi.NewContact
	done chan struct{}
	id   int64
	err  error
}

// NewCreator returns a Creator whose batches are sent under ctx (the run's:
// a batch in flight is not abandoned because one waiter gave up).
func (m *Matcher) NewCreator(ctx context.Context, linger time.Duration) *Creator {
	return &Creator{m: m, ctx: ctx, linger: linger, byID: map[string]*pendingCreate{}}
}

// BeforeRequest sets fn as the checkpoint of every batch's request: the
// Attempt runs it with the batch's request_ids just before the request is
// sent (WithCheckpoint), and the batch fails with its error, unsent, when
// it fails. Set it before the first Create.
func (c *Creator) BeforeRequest(fn func(ctx context.Context, requestIDs []string) error) {
	c.before = fn
}

// Create creates nc in the next batch and returns its id. The error is the
// batch's (an InDoubt one may have created it: Recheck before creating
// again), or ctx's when the caller stops waiting.
func (c *Creator) Create(ctx context.Context, nc kommoapi.NewContact) (int64, error) {
	c.mu.Lock()
	p := c.byID[nc.RequestID]
	if p == nil {
		p = &pendingCreate{nc: nc, done: make(chan struct{})}
		c.byID[nc.RequestID] = p
		c.pending = append(c.pending, p)
		switch {
		case len(c.pending) >= kommoapi.MaxBatch:
			batch := c.takeLocked()
			go c.send(batch)
		case len(c.pending) == 1:
			c.timer = time.AfterFunc(c.linger, c.flush)
		}
	}
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.id, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// flush sends what is pending (the linger ran out).
func (c *Creator) flush() {
	c.mu.Lock()
	batch := c.takeLocked()
	c.mu.Unlock()
	if len(batch) > 0 {
		c.send(batch)
	}
}

// takeLocked empties the pending batch. Callers hold c.mu.
func (c *Creator) takeLocked() []*pendingCreate {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	batch := c.pending
	c.pending = nil
	return batch
}

// forget drops failed items, so a later Create of theirs tries again.
func (c *Creator) forget(failed []*pendingCreate) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range failed {
		if c.byID[p.nc.RequestID] == p {
			delete(c.byID, p.nc.RequestID)
		}
	}
}

// send creates a batch. A 400 that names some of its items fails those and
// sends the rest again once: one bad name does not hold back forty-nine
// good contacts.
func (c *Creator) send(batch []*pendingCreate) {
	for round := 0; len(batch) > 0; round++ {
		items := make([]kommoapi.NewContact, len(batch))
		for i, p := range batch {
			items[i] = p.nc
		}
		ctx := c.ctx
		if c.before != nil {
			rids := make([]string, len(items))
			for i, it := range items {
				rids[i] = it.RequestID
			}
			ctx = WithCheckpoint(ctx, Checkpoint{Do: func(ctx context.Context) error { return c.before(ctx, rids) }})
		}
		ids, err := c.m.CreateContacts(ctx, items)
		var refused map[string]bool
		if e, ok := kommoapi.AsError(err); ok && e.Status == 400 && len(e.Invalid) > 0 && round == 0 {
			refused = map[string]bool{}
			for _, fe := range e.Invalid {
				refused[fe.RequestID] = true
			}
		}
		var again, failed, finished []*pendingCreate
		for _, p := range batch {
			switch id, ok := ids[p.nc.RequestID]; {
			case ok:
				p.id = id
			case refused != nil && !refused[p.nc.RequestID]:
				again = append(again, p)
				continue
			default:
				p.err = err
				failed = append(failed, p)
			}
			finished = append(finished, p)
		}
		if len(again) == len(batch) {
			for _, p := range again {
				p.err = err
			}
			failed = append(failed, again...)
			finished = append(finished, again...)
			again = nil
		}
		// Forgotten before the waiters wake: a waiter that tries again at
		// once must start a new item, not find this failed one.
		c.forget(failed)
		for _, p := range finished {
			close(p.done)
		}
		batch = again
	}
}
