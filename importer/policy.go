package importer

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
)

// The retry policy, in one place (rclone's shouldRetry and pacer): every
// failed HTTP attempt — a send, a look-up, a verify read, the preflight — is
// classified here into what its caller does next. The callers differ only in
// how they wait: a send parks its conversation and the worker moves on,
// verify sleeps.

// action is what to do after a failed attempt.
type action int

const (
	// actRetry: the API may answer next time (5xx, timeouts, connection
	// errors): try again after decision.after. With inDoubt, the request may
	// have been processed: look it up before sending it again.
	actRetry action = iota + 1
	// actPause: 429. Hold every request of the scope for decision.after,
	// then try again.
	actPause
	// actFail: the API refused this request for good (a 4xx): sending it
	// again unchanged is pointless.
	actFail
	// actStop: the API refuses the whole scope (blocked, signature, unknown
	// scope): stop the run; decision.err is the *StopError.
	actStop
	// actAbort: the caller's context ended: stop at once.
	actAbort
)

type decision struct {
	act     action
	after   time.Duration
	inDoubt bool
	api     *chatsapi.Error // the classified error (nil for actAbort)
	err     error           // what to return for actStop and actAbort
}

// retryPolicy holds the settings decide needs.
type retryPolicy struct {
	backoffBase, backoffMax time.Duration
	defaultPause            time.Duration
}

// decide classifies err, the failure of attempt number failures (1-based,
// counting the failures in a row at the same request).
func (rp retryPolicy) decide(ctx context.Context, err error, failures int) decision {
	if ctx.Err() != nil {
		return decision{act: actAbort, err: ctx.Err()}
	}
	apiErr, ok := chatsapi.AsError(err)
	if !ok {
		// Not from the API client: the pacer's database, or a bug. Treated as
		// trouble reaching the API, which the caller's attempt budget bounds.
		apiErr = &chatsapi.Error{Kind: chatsapi.KindRetryable, Err: err}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return decision{act: actAbort, err: err}
		}
	}
	if scopeWide(apiErr) {
		return decision{act: actStop, api: apiErr, err: stopError(apiErr)}
	}
	switch apiErr.Kind {
	case chatsapi.KindPermanent:
		return decision{act: actFail, api: apiErr}
	case chatsapi.KindRateLimited:
		d := apiErr.RetryAfter
		if d <= 0 {
			d = rp.defaultPause
		}
		return decision{act: actPause, after: d, api: apiErr}
	}
	return decision{act: actRetry, after: rp.backoff(failures), inDoubt: apiErr.InDoubt, api: apiErr}
}

// backoff is the delay before retry number n (1-based): exponential, capped,
// with jitter so that requests hit by one outage do not retry in step.
func (rp retryPolicy) backoff(n int) time.Duration {
	d := rp.backoffBase << min(max(n-1, 0), 20)
	if d <= 0 || d > rp.backoffMax {
		d = rp.backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// scopeWide reports whether an error concerns the whole scope rather than
// one message: failing every message for it would be wrong, stopping is right.
func scopeWide(e *chatsapi.Error) bool {
	return e.Kind == chatsapi.KindBlocked || e.Kind == chatsapi.KindBadSignature ||
		e.ErrorType == chatsapi.ErrorTypeNotRegistered || (e.Status >= 300 && e.Status < 400)
}

// stopError turns an error that concerns the whole scope (a block, a refused
// signature, an unknown scope) into the run's stop reason.
func stopError(e *chatsapi.Error) error {
	switch {
	case e.ErrorType == chatsapi.ErrorTypeNotRegistered || (e.Status >= 300 && e.Status < 400):
		return &StopError{Reason: StopUnknownScope, Err: e}
	case e.Kind == chatsapi.KindBlocked:
		return &StopError{Reason: StopBlocked, Err: e}
	}
	if !e.ServerDate.IsZero() {
		// The response's Date has a resolution of a second and took a
		// moment to arrive: only minutes of difference are skew.
		if skew := time.Since(e.ServerDate); skew > 2*time.Minute || skew < -2*time.Minute {
			return &StopError{Reason: StopClockSkew, Skew: skew, Err: e}
		}
	}
	return &StopError{Reason: StopBadSignature, Err: e}
}
