package store

import (
	"context"
	"time"
)

// The scope's rate schedule (see importer/pacer.go): one GCRA row per
// scope whose tat is the next free slot. A reservation takes the slot at
// max(tat, now + lead, the end of a pause) and moves tat one interval on
// (the interval at full speed divided by the factor in force). The factor
// steps back up by the recovery step once a recovery period has passed
// without a pause; stepping is decided once per reservation, on the row as
// it is under its lock.

// reserveSlot takes the scope's next slot, at least $5 seconds from now, for
// the pacer $7 ($3: the recovery period in seconds, $4: the recovery step).
// The scope is shared when another pacer reserved last or did within $9
// seconds of the slot before (shared_until); then the slot moves tat on by
// $2 seconds (the interval at full speed), and by $6 when the pacer is
// alone. The first shared slot after a lone pacer's comes $8 seconds later.
// It returns how far the slot is from now, the factor in force, the seconds
// left of a pause, the database's now() and whether the scope is shared,
// all in the database's time, and true. A shared scope's next free slot
// more than $10 seconds from now (when $10 > 0, and no pause holds it) is
// not taken: the row says how far it is, the factor, no pause, now(),
// shared, and false.
const reserveSlot = `
WITH taken AS (
INSERT INTO kommo_import_pacer AS p (scope_id, tat, holder) VALUES ($1, now() + make_interval(secs => $5::float8 + $6::float8), $7)
ON CONFLICT (scope_id) DO UPDATE SET (factor, last_step, tat, holder, shared_until) = (
    SELECT f, CASE WHEN stepping THEN now() ELSE p.last_step END,
           start + make_interval(secs => CASE WHEN shared THEN $2::float8 ELSE $6::float8 END / f),
           $7, CASE WHEN shared THEN start + make_interval(secs => $9) ELSE p.shared_until END
    FROM (SELECT stepping, f, shared,
                 GREATEST(p.tat, now() + make_interval(secs => $5), COALESCE(p.paused_until, now()))
                 + make_interval(secs => CASE WHEN shared AND NOT was_shared THEN $8::float8 ELSE 0 END) AS start
          FROM (SELECT stepping, was_shared, was_shared OR p.holder <> $7 AS shared,
                       CASE WHEN stepping THEN least(1, p.factor * $4) ELSE p.factor END AS f
                FROM (SELECT p.factor < 1 AND p.last_step <= now() - make_interval(secs => $3)
                             AND COALESCE(p.paused_until, '-infinity') < now() AS stepping,
                             COALESCE(p.shared_until > now(), false) AS was_shared) s) s) s)
WHERE $10::float8 <= 0 OR p.tat <= now() + make_interval(secs => $10)
   OR NOT (COALESCE(p.shared_until > now(), false) OR COALESCE(p.holder <> $7, false))
   OR COALESCE(p.paused_until > now(), false)
RETURNING GREATEST(extract(epoch FROM tat - now())::float8
                   - CASE WHEN shared_until > now() THEN $2::float8 ELSE $6::float8 END / factor, 0),
    factor, GREATEST(COALESCE(extract(epoch FROM paused_until - now())::float8, 0), 0),
    extract(epoch FROM now())::float8, COALESCE(shared_until > now(), false), true)
SELECT * FROM taken
UNION ALL
SELECT GREATEST(extract(epoch FROM tat - now())::float8, 0), factor, 0, extract(epoch FROM now())::float8, true, false
FROM kommo_import_pacer WHERE scope_id = $1 AND NOT EXISTS (SELECT FROM taken)`

// SlotParams says what a reservation asks of the schedule.
type SlotParams struct {
	Scope    string
	Holder   string        // the pacer asking (one per process and scope)
	Interval time.Duration // between slots at full speed, the scope shared
	// AloneInterval is the interval when the pacer has the scope to itself.
	AloneInterval time.Duration
	// Handover is how much later the first shared slot after a lone
	// pacer's comes; SharedFor, how long after a slot the scope counts as
	// shared once another pacer reserved.
	Handover, SharedFor time.Duration
	Lead                time.Duration // the slot is at least this far from now
	Recover             time.Duration // quiet time after which the factor steps up
	Step                float64       // the factor's step up
	// Horizon: a shared scope's slot is not taken further ahead than this
	// (0: no limit); Slot.Reserved says so.
	Horizon time.Duration
}

// Slot is a reserved slot as the database sees it.
type Slot struct {
	In     time.Duration // from the database's now to the slot
	Factor float64       // the rate factor in force
	Paused time.Duration // left of a pause in force
	DBNow  time.Time     // the database's now()
	Shared bool          // another pacer reserves slots of the scope too
	// Reserved is false when the next free slot was beyond the horizon and
	// not taken: In says how far it is.
	Reserved bool
}

// ReserveSlot takes the scope's next slot.
func (q *Queries) ReserveSlot(ctx context.Context, p SlotParams) (Slot, error) {
	var in, paused, now float64
	var s Slot
	err := q.db.QueryRow(ctx, reserveSlot, p.Scope, p.Interval.Seconds(), p.Recover.Seconds(), p.Step, p.Lead.Seconds(),
		p.AloneInterval.Seconds(), p.Holder, p.Handover.Seconds(), p.SharedFor.Seconds(), p.Horizon.Seconds()).
		Scan(&in, &s.Factor, &paused, &now, &s.Shared, &s.Reserved)
	s.In, s.Paused, s.DBNow = Seconds(in), Seconds(paused), time.Unix(0, int64(now*1e9))
	return s, err
}

// pauseScope records a 429: no slot before now + $2 seconds, and the rate
// halved (down to $3) unless a pause is already in force (one step per
// episode).
const pauseScope = `
INSERT INTO kommo_import_pacer AS p (scope_id, tat, factor, last_step, paused_until)
VALUES ($1, now() + make_interval(secs => $2), 0.5, now(), now() + make_interval(secs => $2))
ON CONFLICT (scope_id) DO UPDATE SET
    factor = CASE WHEN COALESCE(p.paused_until, '-infinity') < now() THEN GREATEST(p.factor / 2, $3) ELSE p.factor END,
    last_step = now(),
    paused_until = GREATEST(COALESCE(p.paused_until, now()), now() + make_interval(secs => $2)),
    tat = GREATEST(p.tat, now() + make_interval(secs => $2))
RETURNING factor`

// PauseScope records a 429 for the scope: paused for d, the factor halved
// (not below minFactor) once per episode. It returns the factor in force.
func (q *Queries) PauseScope(ctx context.Context, scope string, d time.Duration, minFactor float64) (float64, error) {
	var f float64
	err := q.db.QueryRow(ctx, pauseScope, scope, d.Seconds(), minFactor).Scan(&f)
	return f, err
}

// delaySlots moves the scope's next free slot $2 seconds on.
const delaySlots = `UPDATE kommo_import_pacer SET tat = tat + make_interval(secs => $2) WHERE scope_id = $1`

// DelaySlots moves the scope's next free slot, and so every slot not yet
// reserved, d later: a request reached the API later than the schedule's
// margin allows, and the one R slots after it must not crowd its second.
func (q *Queries) DelaySlots(ctx context.Context, scope string, d time.Duration) error {
	_, err := q.db.Exec(ctx, delaySlots, scope, d.Seconds())
	return err
}

// readPacer reads the scope's schedule without taking a slot (heartbeats).
const readPacer = `
SELECT factor, GREATEST(COALESCE(extract(epoch FROM paused_until - now())::float8, 0), 0)
FROM kommo_import_pacer WHERE scope_id = $1`

// ReadPacer reads the scope's factor and the pause left; pgx.ErrNoRows when
// the scope has no schedule yet.
func (q *Queries) ReadPacer(ctx context.Context, scope string) (factor float64, paused time.Duration, err error) {
	var p float64
	err = q.db.QueryRow(ctx, readPacer, scope).Scan(&factor, &p)
	return factor, Seconds(p), err
}

// adoptRate sets the scope's rate when no live process of the scope sends
// at another; it returns the rate in force and the one it replaced (0:
// none).
const adoptRate = `
WITH cur AS (
    SELECT rate FROM kommo_import_pacer WHERE scope_id = $1 FOR UPDATE
), busy AS (
    SELECT count(*) AS n FROM kommo_import_live_processes p
    JOIN kommo_import_runs r ON r.name = p.run_name
    WHERE r.scope_id = $1 AND p.process_id <> $3
), up AS (
    INSERT INTO kommo_import_pacer AS p (scope_id, tat, rate) VALUES ($1, now(), $2)
    ON CONFLICT (scope_id) DO UPDATE SET rate = $2
    WHERE p.rate IS NULL OR p.rate = $2 OR (SELECT n FROM busy) = 0
    RETURNING rate
)
SELECT COALESCE((SELECT rate FROM up), (SELECT rate FROM cur)), COALESCE((SELECT rate FROM cur), 0)`

// AdoptRate makes rate the scope's rate unless a live process of the scope
// (other than process) sends at another; it returns the rate in force and
// the rate recorded before (0: none).
func (q *Queries) AdoptRate(ctx context.Context, scope string, rate float64, process string) (inForce, before float64, err error) {
	err = q.db.QueryRow(ctx, adoptRate, scope, rate, process).Scan(&inForce, &before)
	return inForce, before, err
}
