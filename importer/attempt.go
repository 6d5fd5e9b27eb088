package importer

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
)

// The one paced attempt: every HTTP call the importer makes (a send, a
// look-up, create-chat, a verify read, the preflight, and the media and
// contact calls) goes through attempter.attempt, which owns the steps
// around it, in order:
//
//	reserve a slot of the schedule → wait for it (the checkpoint, if any,
//	just before it) → check the slot is still usable and the caller's
//	guard → make the request (the Chats API client checks again right
//	before its first byte) → classify a failure (policy.go) → on a 429,
//	pause the schedule for every process and try again in a later slot.
//
// Everything else a failure calls for (fail the message, park its
// conversation, sleep and try again, stop the run) differs by caller and is
// the caller's: attempt returns the decision.

// request is one HTTP call to make through attempt.
type request struct {
	// checkpoint runs just before the slot, so that the request itself goes
	// out on time (a send's "sending"); nil for reads.
	checkpoint func(ctx context.Context) error
	// uncheckpoint undoes checkpoint when the request was not made (made
	// false: its slot was given up, a guard refused it) or was refused
	// unprocessed (made true: a 429).
	uncheckpoint func(ctx context.Context, made bool) error
	// guard is asked right before the request is made, and again by the
	// Chats API client right before its first byte is written (on the
	// connection's writer: it must be quick and safe for concurrent use),
	// with the time the checkpoint started (zero without one); false: it
	// must not go out (the caller's lease may have passed). attempt returns
	// errGuard.
	guard func(checkpointed time.Time) bool
	// do makes the request: one HTTP attempt.
	do func(ctx context.Context) error
	// waited, if set, accumulates the time spent waiting for slots (the
	// worker pool's cycle leaves it out).
	waited *time.Duration
	// returnOnPause: a 429 ends the attempt (the pause recorded) with the
	// actPause decision, instead of being waited out (the preflight: the
	// run can stage meanwhile).
	returnOnPause bool
	// parkOnPause: a pause in force (this process's 429 or, learnt at the
	// reservation, another's) ends the attempt with actPause before any
	// request, instead of waiting it out: the main API's calls, whose
	// conversation parks and lets the worker send others meanwhile.
	parkOnPause bool
}

// errGuard: the request's guard refused it; nothing was sent.
var errGuard = errors.New("request not made: its guard refused it")

// errStalled: the request was not written, because it could not be written
// within maxLate of the moment attempt let it go (a frozen or starved
// process, a dial waiting for a lost SYN to be sent again), or a 429 paused
// the schedule meanwhile. attempt takes another slot.
var errStalled = errors.New("request not made: it stalled on its way to the network")

// attempter makes paced attempts on one schedule (the Chats API's scope,
// or the v4 API's).
type attempter struct {
	pacer  *pacer
	policy retryPolicy
	log    *slog.Logger
	paused atomic.Int64 // 429 answers
	// pauseMsg is what a 429 logs; "" for the Chats API's words.
	pauseMsg string
}

// attempt makes r in a slot of the schedule. It returns a zero decision
// when the request succeeded, the decision of its failure otherwise (never
// actPause, unless r.returnOnPause: a 429 is waited out here), or an error when it could not be
// made: errHalted (halt was closed while waiting for the slot), errGuard,
// an interruption (ctx ended), or the checkpoint's error. failures counts
// the failures in a row before this attempt, for the backoff.
func (a *attempter) attempt(ctx context.Context, halt <-chan struct{}, r request, failures int) (decision, error) {
	for {
		if d, ok := a.parked(r); ok {
			return d, nil
		}
		var lead time.Duration
		if r.checkpoint != nil {
			lead = a.pacer.lead()
		}
		s, err := a.pacer.reserve(ctx, lead)
		if err != nil {
			return decision{}, interruptedOr(ctx, err)
		}
		if d, ok := a.parked(r); ok {
			// The reservation found another process's pause: its slot,
			// after the pause, is given up.
			return d, nil
		}
		if r.waited != nil {
			// The wait until the slot, the lead (checkpoint) apart.
			*r.waited += max(s.at.Sub(a.pacer.clock.Now())-lead, 0)
		}
		if ok, err := a.pacer.waitUntil(ctx, s, lead, halt); err != nil {
			return decision{}, interrupted(CauseSignal, "", err)
		} else if !ok {
			return decision{}, errHalted
		}
		var checkpointed time.Time
		if r.checkpoint != nil {
			started := a.pacer.clock.Now()
			checkpointed = started
			if err := r.checkpoint(ctx); err != nil {
				return decision{}, err
			}
			a.pacer.checkpointTook(a.pacer.clock.Now().Sub(started))
			if _, err := a.pacer.waitUntil(ctx, s, 0, nil); err != nil {
				// A hard stop: a checkpointed request stays in doubt,
				// reconciled on resume.
				return decision{}, interrupted(CauseSignal, "", err)
			}
		}
		if !a.pacer.usable(s) {
			// A 429 arrived while this slot was waited for (never send into
			// a pause), or the slot is gone (the wait or the checkpoint took
			// too long). The request was not made.
			if err := a.undo(ctx, r, false); err != nil {
				return decision{}, err
			}
			continue
		}
		place, err := a.pacer.spaced(ctx)
		if err != nil {
			// A hard stop: as in the wait for the slot.
			return decision{}, interrupted(CauseSignal, "", err)
		}
		if r.guard != nil && !r.guard(checkpointed) {
			if err := a.undo(ctx, r, false); err != nil {
				return decision{}, err
			}
			return decision{}, errGuard
		}
		a.pacer.taken()
		// The checks above hold when they are made; the Chats API client
		// makes them again right before the request's first byte is
		// written (chatsapi.WithWriteCheck), so that a process stalled in
		// between (signing, the pool, a dial, a freeze) does not write it
		// afterwards: into a lease another process has taken over, or on
		// top of the slots that came meanwhile.
		released := a.pacer.clock.Now()
		err = a.do(ctx, r, place, s, func() error {
			if !a.pacer.writable(released) {
				return errStalled
			}
			if r.guard != nil && !r.guard(checkpointed) {
				return errGuard
			}
			return nil
		})
		if err == nil {
			return decision{}, nil
		}
		if errors.Is(err, errGuard) || errors.Is(err, errStalled) {
			// Refused before its first byte: not made.
			if err := a.undo(ctx, r, false); err != nil {
				return decision{}, err
			}
			if errors.Is(err, errGuard) {
				return decision{}, errGuard
			}
			continue
		}
		d := a.policy.decide(ctx, err, failures+1)
		if d.act != actPause {
			return d, nil
		}
		a.pause(ctx, d)
		if err := a.undo(ctx, r, true); err != nil {
			return decision{}, err
		}
		if r.returnOnPause {
			return d, nil
		}
	}
}

// do makes r's request and records when it was written (httptrace's
// WroteRequest: headers and body flushed) and how long until the answer
// began (GotFirstResponseByte), for the pacer's spacing. A request that
// wrote none (it failed before, or made no HTTP call: the unit tests)
// keeps the time its place was taken.
//
// What the write says counts as soon as it is written, not when the answer
// comes (3 s later from a hanging API, long after the slot R on was
// reserved): the ring takes the write time, and a write later than its
// shared slot allows moves the schedule on meanwhile. The answer then adds
// only what its round trip tells beyond that.
//
// check is run right before the request's first byte is written (by the
// Chats API client; other requests do without it).
func (a *attempter) do(ctx context.Context, r request, place uint64, s slot, check func() error) error {
	ctx = chatsapi.WithWriteCheck(ctx, check)
	var wroteAt, answeredAt, moved atomic.Int64
	var early sync.WaitGroup
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			t := a.pacer.clock.Now()
			if !wroteAt.CompareAndSwap(0, t.UnixNano()) {
				return
			}
			if d := a.pacer.wrote(place, s, t, 0); d > 0 {
				moved.Store(int64(d))
				early.Go(func() { a.moveOn(ctx, d, s, t, 0) })
			}
		},
		GotFirstResponseByte: func() { answeredAt.CompareAndSwap(0, a.pacer.clock.Now().UnixNano()) },
	})
	err := r.do(ctx)
	early.Wait()
	if ns := wroteAt.Load(); ns != 0 {
		var rtt time.Duration
		if as := answeredAt.Load(); as >= ns {
			rtt = time.Duration(as - ns)
		}
		if a.log.Enabled(ctx, slog.LevelDebug) {
			// Every request's timeline, in this process's clock, for
			// scripts/rate-trace.py to match against kommo-sim --verbose
			// (make soak TRACE=1): nanoseconds, where log times and
			// durations have milliseconds.
			a.log.Debug("request written", "slot_ns", s.at.UnixNano(), "reserved_ns", s.reserved.UnixNano(),
				"wrote_ns", ns, "round_trip_ns", rtt.Nanoseconds(), "shared", s.shared)
		}
		t := time.Unix(0, ns)
		if d := a.pacer.wrote(place, s, t, rtt) - time.Duration(moved.Load()); d > 0 {
			a.moveOn(ctx, d, s, t, rtt)
		}
	}
	return err
}

// moveOn moves the schedule d on after a request, in slot s and written at
// t, reached the API late.
func (a *attempter) moveOn(ctx context.Context, d time.Duration, s slot, t time.Time, rtt time.Duration) {
	a.log.Debug("rate schedule: a request reached the API late; moving the slots on", "by", d,
		"written_after_slot", t.Sub(s.at), "round_trip", rtt, "slot_reserved_ahead", s.at.Sub(s.reserved))
	if err := a.pacer.delay(ctx, d); err != nil && ctx.Err() == nil {
		a.log.Warn("rate schedule: could not move the slots on after a late request", "late", d, "err", err)
	}
}

// parked returns the actPause decision of a request that parks on a pause
// in force, and whether there is one.
func (a *attempter) parked(r request) (decision, bool) {
	if !r.parkOnPause {
		return decision{}, false
	}
	until := a.pacer.PausedUntil()
	if until.IsZero() {
		return decision{}, false
	}
	return decision{act: actPause, after: until.Sub(a.pacer.clock.Now())}, true
}

func (a *attempter) undo(ctx context.Context, r request, made bool) error {
	if r.uncheckpoint == nil {
		return nil
	}
	return r.uncheckpoint(ctx, made)
}

// pause holds every request of the schedule for the 429's time and steps
// the rate down, for every process sending to it.
func (a *attempter) pause(ctx context.Context, d decision) {
	a.paused.Add(1)
	if err := a.pacer.pause(ctx, d.after); err != nil {
		a.log.Warn("record pause", "err", err)
	}
	msg := a.pauseMsg
	if msg == "" {
		msg = "rate limited by the API: pausing every request to the scope"
	}
	a.log.Warn(msg, "for", d.after.Round(time.Second), "rate_now", a.pacer.Rate())
}

// sleep waits d on the pacer's clock, or until ctx ends or halt is closed.
func (a *attempter) sleep(ctx context.Context, halt <-chan struct{}, d time.Duration) error {
	t := a.pacer.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return interrupted(CauseSignal, "", ctx.Err())
	case <-halt:
		return errHalted
	case <-t.C():
		return nil
	}
}
