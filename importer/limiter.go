package importer

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is the one gate every HTTP attempt of a process passes: sends,
// retries, create-chat and history look-ups alike. It spaces requests at the
// process's share of the run's rate (burst 1, so no window ever sees more),
// and a 429 pauses every caller until the API's retry-after has passed and
// steps the rate down; it then recovers slowly.
type Limiter struct {
	lim   *rate.Limiter
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu         sync.Mutex
	share      float64   // requests/s this process may make at full speed
	factor     float64   // 1 normally; halved by each 429, recovering over time
	pauseUntil time.Time // no request before this
	lastStep   time.Time // last change of factor

	requests atomic.Int64
	waited   atomic.Int64 // nanoseconds spent waiting
}

const (
	minFactor    = 1.0 / 16
	recoverEvery = 30 * time.Second // a 429-free interval after which the rate steps back up
	recoverStep  = 1.25
)

// NewLimiter returns a limiter at r requests per second (r <= 0: unlimited).
func NewLimiter(r float64) *Limiter {
	l := &Limiter{
		lim:    rate.NewLimiter(limitOf(r), 1),
		now:    time.Now,
		sleep:  sleepCtx,
		share:  r,
		factor: 1,
	}
	return l
}

func limitOf(r float64) rate.Limit {
	if r <= 0 {
		return rate.Inf
	}
	return rate.Limit(r)
}

// Wait blocks until a request may be made, or ctx is done. Each successful
// Wait counts as one HTTP attempt.
func (l *Limiter) Wait(ctx context.Context) error {
	start := l.now()
	defer func() { l.waited.Add(int64(l.now().Sub(start))) }()
	for {
		l.mu.Lock()
		pause := l.pauseUntil.Sub(l.now())
		l.mu.Unlock()
		if pause > 0 {
			if err := l.sleep(ctx, pause); err != nil {
				return err
			}
			continue
		}
		if err := l.lim.Wait(ctx); err != nil {
			return err
		}
		// A 429 may have arrived while this caller waited for its token:
		// never send into a pause.
		l.mu.Lock()
		paused := l.now().Before(l.pauseUntil)
		if !paused {
			l.recoverLocked()
		}
		l.mu.Unlock()
		if !paused {
			l.requests.Add(1)
			return nil
		}
	}
}

// Pause stops every caller for d and halves the rate (down to 1/16 of the
// share). Overlapping pauses extend to the latest end; a pause arriving while
// one is in force does not step the rate down again.
func (l *Limiter) Pause(d time.Duration) {
	l.PauseUntil(l.now().Add(d), true)
}

// PauseUntil pauses every caller until t. With stepDown, the rate is halved
// unless a pause is already in force. It is how a pause another process saw
// (recorded in the database) reaches this one.
func (l *Limiter) PauseUntil(t time.Time, stepDown bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if stepDown && !now.Before(l.lastStep) && l.pauseUntil.Before(now) {
		l.factor = math.Max(l.factor/2, minFactor)
		l.lastStep = t
		l.applyLocked()
	}
	if t.After(l.pauseUntil) {
		l.pauseUntil = t
	}
}

// SetShare sets this process's share of the run's rate (r <= 0: unlimited).
func (l *Limiter) SetShare(r float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r == l.share {
		return
	}
	l.share = r
	l.applyLocked()
}

// Rate is the rate in force now, in requests per second (0: unlimited).
func (l *Limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.share <= 0 {
		return 0
	}
	return l.share * l.factor
}

// PausedUntil is the end of the pause in force, or the zero time.
func (l *Limiter) PausedUntil() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pauseUntil.Before(l.now()) {
		return time.Time{}
	}
	return l.pauseUntil
}

// Requests is the number of attempts let through so far.
func (l *Limiter) Requests() int64 { return l.requests.Load() }

// Waited is the total time callers spent waiting.
func (l *Limiter) Waited() time.Duration { return time.Duration(l.waited.Load()) }

func (l *Limiter) recoverLocked() {
	if l.factor >= 1 {
		return
	}
	now := l.now()
	if now.Sub(l.lastStep) < recoverEvery {
		return
	}
	l.factor = math.Min(1, l.factor*recoverStep)
	l.lastStep = now
	l.applyLocked()
}

func (l *Limiter) applyLocked() {
	if l.share <= 0 {
		l.lim.SetLimit(rate.Inf)
		return
	}
	l.lim.SetLimit(rate.Limit(l.share * l.factor))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
