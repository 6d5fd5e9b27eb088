package importer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/migrations"
)

// Two pacers of one scope (two processes) draw from one schedule: their
// slots interleave an interval apart (the shared one, with the margin); a 429 recorded by one holds the
// other's next slot back and halves the rate, which recovers after 30
// quiet seconds.
func TestPacersShareOneSchedule(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	_, err := migrations.Apply(ctx, pool)
	require.NoError(t, err)
	const rate = 10.0 // slots 100.8 ms apart: round trips on a loaded machine jitter by a few ms
	a := newPacer(store.New(pool), wallClock{}, "scope-1", rate, noDBWait)
	b := newPacer(store.New(pool), wallClock{}, "scope-1", rate, noDBWait)
	other := newPacer(store.New(pool), wallClock{}, "scope-2", rate, noDBWait)

	// The slots in the database's time: each pacer maps its slots to its
	// own clock through its own estimate of the offset, which a slow first
	// round trip (a loaded machine) leaves off by up to half of it (24 ms
	// between a and b was seen under make test-under-load).
	var slots []time.Time
	for i := range 10 {
		p := a
		if i%2 == 1 {
			p = b
		}
		// The first slot 2 s ahead, so that the schedule stays ahead of
		// the reservations however slowly a loaded machine makes them
		// (reserving at once, one came 162 ms after the one before under
		// make test-under-load: a slot is never before now).
		lead := time.Duration(0)
		if i == 0 {
			lead = 2 * time.Second
		}
		s, err := p.reserve(ctx, lead)
		require.NoError(t, err)
		p.mu.Lock()
		slots = append(slots, s.at.Add(-p.dbClock.offset))
		p.mu.Unlock()
	}
	// a alone took the first slot; b's, the first shared one, comes the
	// handover later (room for a's lone request to have gone out late).
	require.InDelta(t, float64(a.aloneInterval()+handover), float64(slots[1].Sub(slots[0])), float64(20*time.Millisecond),
		"the first shared slot")
	interval := a.interval()
	for i := 2; i < len(slots); i++ {
		require.InDelta(t, float64(interval), float64(slots[i].Sub(slots[i-1])), float64(20*time.Millisecond),
			"slot %d is one interval after the one before, whichever process took it", i)
	}
	// Its slot maps to our clock through this very round trip (off by up
	// to half of it: 64 ms once under make test-under-load).
	start := time.Now()
	s, err := other.reserve(ctx, 0)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), s.at, 50*time.Millisecond+time.Since(start), "another scope has a schedule of its own")

	// A 429 seen by a pauses b. (b may first wait until its last slot is
	// within the horizon: the slot is measured from the pause, not from
	// the reservation.)
	pausedAt := time.Now()
	require.NoError(t, a.pause(ctx, 2*time.Second))
	require.InDelta(t, rate/2, a.Rate(), 0.01)
	s, err = b.reserve(ctx, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, s.at.Sub(pausedAt), 1900*time.Millisecond, "b's next slot comes after the pause")
	require.False(t, b.PausedUntil().IsZero(), "and b knows of the pause")
	require.InDelta(t, rate/2, b.Rate(), 0.01)
	// A second 429 within the pause does not step down again.
	require.NoError(t, b.pause(ctx, time.Second))
	require.InDelta(t, rate/2, b.Rate(), 0.01)

	// 30 quiet seconds later the rate steps back up by a quarter.
	_, err = pool.Exec(ctx, `UPDATE kommo_import_pacer SET paused_until = now() - interval '1 second', last_step = now() - interval '31 seconds', tat = now() WHERE scope_id = 'scope-1'`)
	require.NoError(t, err)
	_, err = a.reserve(ctx, 0)
	require.NoError(t, err)
	require.InDelta(t, rate/2*recoverStep, a.Rate(), 0.01)
}

// The schedule's statement hands a shared scope's slot out only within the
// horizon asked for: beyond it, it takes nothing and says how far the next
// free slot is. A pacer alone, and a scope in a pause (the slot after the
// pause is what the caller needs to learn), are not held to it.
func TestTheScheduleHandsSharedSlotsOutWithinTheHorizon(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	_, err := migrations.Apply(ctx, pool)
	require.NoError(t, err)
	q := store.New(pool)
	params := func(holder string, lead, horizon time.Duration) store.SlotParams {
		return store.SlotParams{Scope: "scope-h", Holder: holder, Interval: 150 * time.Millisecond, AloneInterval: 145 * time.Millisecond,
			Handover: handover, SharedFor: sharedFor, Lead: lead, Horizon: horizon, Recover: recoverEvery, Step: recoverStep}
	}
	s, err := q.ReserveSlot(ctx, params("a", 2*time.Second, 500*time.Millisecond))
	require.NoError(t, err)
	require.True(t, s.Reserved, "alone: no horizon")
	require.False(t, s.Shared)
	s, err = q.ReserveSlot(ctx, params("a", 0, 500*time.Millisecond))
	require.NoError(t, err)
	require.True(t, s.Reserved)
	require.InDelta(t, float64(2145*time.Millisecond), float64(s.In), float64(150*time.Millisecond))

	// b joins: the next free slot is 2.3 s away, beyond its horizon.
	for range 2 {
		s, err = q.ReserveSlot(ctx, params("b", 0, 500*time.Millisecond))
		require.NoError(t, err)
		require.False(t, s.Reserved, "beyond the horizon: nothing taken")
		require.True(t, s.Shared)
		require.InDelta(t, float64(2290*time.Millisecond), float64(s.In), float64(150*time.Millisecond), "how far the next free slot is")
	}
	s, err = q.ReserveSlot(ctx, params("b", 0, 3*time.Second))
	require.NoError(t, err)
	require.True(t, s.Reserved, "within a wider horizon")
	require.True(t, s.Shared)
	require.InDelta(t, float64(2290*time.Millisecond+handover), float64(s.In), float64(150*time.Millisecond),
		"the slot the refusals left free, the handover later")

	// A pause: the slot after it is handed out, however far.
	_, err = q.PauseScope(ctx, "scope-h", 10*time.Second, minFactor)
	require.NoError(t, err)
	s, err = q.ReserveSlot(ctx, params("a", 0, 500*time.Millisecond))
	require.NoError(t, err)
	require.True(t, s.Reserved)
	require.Greater(t, s.Paused, 9*time.Second)
	require.GreaterOrEqual(t, s.In, s.Paused-time.Millisecond, "the slot after the pause") // seconds as float8
}
