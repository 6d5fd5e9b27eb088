package store

import (
	"context"
	"time"
)

// A process working a run is alive while its database session holds its
// advisory lock (the session ends when the process dies, kill -9
// included), and while its heartbeat is recent (a host cut off from the
// network, whose session the server may keep for minutes).
// kommo_import_live_processes (migrations/002) applies both rules. These
// statements run on the process's own session connection.

// TryLockProcess takes the process's liveness lock on this session.
func (q *Queries) TryLockProcess(ctx context.Context, key int64) (bool, error) {
	var got bool
	err := q.db.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got)
	return got, err
}

// UnlockProcess releases it.
func (q *Queries) UnlockProcess(ctx context.Context, key int64) error {
	_, err := q.db.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key)
	return err
}

// Process is a process's row.
type Process struct {
	Run, ID, Host string
	PID           int
	LockKey       int64
	DeadAfter     time.Duration // without a heartbeat for this long, it is gone
	// RequestTimeout is how long a request of the process may travel: its
	// conversations' in-doubt messages are not sent again by another
	// process before its liveness deadline plus this.
	RequestTimeout time.Duration
}

const upsertProcess = `
INSERT INTO kommo_import_processes (run_name, process_id, host, pid, lock_key, expires_at, request_timeout)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7)
ON CONFLICT (run_name, process_id) DO UPDATE
SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at, lock_key = EXCLUDED.lock_key, request_timeout = EXCLUDED.request_timeout`

// Heartbeat records the process (the first time) or its heartbeat.
func (q *Queries) Heartbeat(ctx context.Context, p Process) error {
	_, err := q.db.Exec(ctx, upsertProcess, p.Run, p.ID, p.Host, p.PID, p.LockKey, p.DeadAfter.Seconds(), p.RequestTimeout.Seconds())
	return err
}

const unregisterProcess = `DELETE FROM kommo_import_processes WHERE run_name = $1 AND process_id = $2`

// Unregister removes the process's row.
func (q *Queries) Unregister(ctx context.Context, run, process string) error {
	_, err := q.db.Exec(ctx, unregisterProcess, run, process)
	return err
}

// renewLeases extends the leases of the conversations this process's
// workers are working now, and only those.
const renewLeases = `
UPDATE kommo_import_conversations c
SET lease_until = now() + make_interval(secs => $4)
FROM unnest($2::text[], $3::text[]) AS w(conversation_id, owner)
WHERE c.run_name = $1 AND c.conversation_id = w.conversation_id AND c.lease_owner = w.owner`

// RenewLeases extends the leases of convs (each held by the owner at the
// same index) by lease.
func (q *Queries) RenewLeases(ctx context.Context, run string, convs, owners []string, lease time.Duration) error {
	_, err := q.db.Exec(ctx, renewLeases, run, convs, owners, lease.Seconds())
	return err
}

// reapLeases frees the conversations leased by processes that are gone, so
// any worker can claim them at once, and forgets processes gone for a while.
// A freed conversation is fenced until its owner's requests can no longer
// arrive: the owner wrote none after its liveness deadline (expires_at; it
// checks that itself), and none travels longer than its request timeout. A
// process the table no longer holds is fenced for $2 from now. The caller's
// own leases ($3) are never freed: a process that reaps is alive, and one
// whose beat reached the database late (a stall longer than its liveness
// span, between its heartbeat and this statement) freed its own
// conversations and left their messages in doubt; it checks its own
// liveness itself, and the others free its leases if it is gone.
const reapLeases = `
WITH freed AS (
    UPDATE kommo_import_conversations c
    SET lease_owner = NULL, lease_until = NULL,
        fence_until = GREATEST(c.fence_until, COALESCE(
            (SELECT p.expires_at + make_interval(secs => p.request_timeout) FROM kommo_import_processes p
             WHERE p.run_name = c.run_name AND p.process_id = split_part(c.lease_owner, '#', 1)),
            now() + make_interval(secs => $2)))
    WHERE c.run_name = $1 AND c.lease_owner IS NOT NULL
      AND split_part(c.lease_owner, '#', 1) <> $3
      AND split_part(c.lease_owner, '#', 1) NOT IN (SELECT process_id FROM kommo_import_live_processes WHERE run_name = $1)
    RETURNING 1
), forgotten AS (
    DELETE FROM kommo_import_processes
    WHERE run_name = $1 AND expires_at < now() - interval '1 minute'
      AND NOT EXISTS (SELECT 1 FROM kommo_import_conversations c
                      WHERE c.run_name = $1 AND split_part(c.lease_owner, '#', 1) = process_id)
)
SELECT (SELECT count(*) FROM freed), (SELECT count(*) FROM kommo_import_live_processes WHERE run_name = $1)`

// ReapLeases frees the leases of the run's processes that are gone, self
// (the caller) aside (fenced as above; requestTimeout for an owner the
// table no longer holds); it returns how many it freed and how many
// processes live.
func (q *Queries) ReapLeases(ctx context.Context, run, self string, requestTimeout time.Duration) (freed, live int64, err error) {
	err = q.db.QueryRow(ctx, reapLeases, run, requestTimeout.Seconds(), self).Scan(&freed, &live)
	return freed, live, err
}
