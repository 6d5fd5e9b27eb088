package contacts

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kommo-import/kommo-import/kommoapi"
)

// Pacer is an Attempt for a command that works alone (contacts plan): a
// client-side limiter at the main API's rate; a 429 pauses every request
// for its retry_after and halves the rate (down to a sixteenth); a 5xx or no answer waits 1 s, 2 s, 4 s ... (up to
// 30 s) and tries again; at most tries attempts a request. A request that is
// in doubt (a POST that may have been carried out) is never repeated. The
// importer uses its own paced attempt instead, on the run's shared schedule.
type Pacer struct {
	lim      *rate.Limiter
	floor    rate.Limit
	tries    int
	log      *slog.Logger
	requests atomic.Int64

	mu          sync.Mutex
	pausedUntil time.Time
}

// NewPacer returns a Pacer of perSecond requests a second, at most tries
// attempts a request; log gets a line for every pause and retry.
func NewPacer(perSecond float64, tries int, log *slog.Logger) *Pacer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pacer{lim: rate.NewLimiter(rate.Limit(perSecond), 1), floor: rate.Limit(perSecond / 16), tries: max(tries, 1), log: log}
}

// Requests returns the number of requests made so far.
func (p *Pacer) Requests() int64 { return p.requests.Load() }

// Attempt is the Pacer's Attempt.
func (p *Pacer) Attempt(ctx context.Context, op Op, call func(context.Context) error) error {
	for try := 1; ; try++ {
		p.mu.Lock()
		wait := time.Until(p.pausedUntil)
		p.mu.Unlock()
		if wait > 0 && !sleepCtx(ctx, wait) {
			return ctx.Err()
		}
		if err := p.lim.Wait(ctx); err != nil {
			return err
		}
		if cp, ok := CheckpointOf(ctx); ok {
			if err := cp.Do(ctx); err != nil {
				return err
			}
		}
		p.requests.Add(1)
		err := call(ctx)
		e, ok := kommoapi.AsError(err)
		if err == nil || !ok || !e.Retryable() || e.InDoubt || try >= p.tries || ctx.Err() != nil {
			return err
		}
		if e.RateLimited() {
			p.mu.Lock()
			p.pausedUntil = time.Now().Add(e.RetryAfter)
			// Slower from now on: halved, down to a sixteenth.
			p.lim.SetLimit(max(p.lim.Limit()/2, p.floor))
			p.mu.Unlock()
			p.log.Warn("rate limited by Kommo's main API: pausing its requests, then slower", "op", string(op), "for", e.RetryAfter.String(),
				"rate_now", float64(p.lim.Limit()), "try", try)
			continue
		}
		backoff := min(time.Second<<(try-1), 30*time.Second)
		p.log.Warn("main API request failed: trying again", "op", string(op), "err", err.Error(), "in", backoff.String(), "try", try)
		if !sleepCtx(ctx, backoff) {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
