package importer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A process working a run is alive while its database session holds its
// advisory lock: the session ends when the process dies, kill -9 included,
// so its conversations are free within a heartbeat (Que's lockers tie
// liveness to pg_backend_pid the same way). The heartbeat stays as the
// fallback for a host cut off from the network, whose session the server may
// keep for minutes: a process whose row expires_at has passed is gone too.
// kommo_import_live_processes (migrations/002) applies both rules.

const lockProcess = `SELECT pg_try_advisory_lock($1)`

const unlockProcess = `SELECT pg_advisory_unlock($1)`

const upsertProcess = `
INSERT INTO kommo_import_processes (run_name, process_id, host, pid, lock_key, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
ON CONFLICT (run_name, process_id) DO UPDATE
SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at, lock_key = EXCLUDED.lock_key`

const unregisterProcess = `DELETE FROM kommo_import_processes WHERE run_name = $1 AND process_id = $2`

// renewLeases extends the leases of the conversations this process's
// workers are working now, and only those.
const renewLeases = `
UPDATE kommo_import_conversations c
SET lease_until = now() + make_interval(secs => $4)
FROM unnest($2::text[], $3::text[]) AS w(conversation_id, owner)
WHERE c.run_name = $1 AND c.conversation_id = w.conversation_id AND c.lease_owner = w.owner`

// reapLeases frees the conversations leased by processes that are gone, so
// any worker can claim them at once, and forgets processes gone for a while.
const reapLeases = `
WITH freed AS (
    UPDATE kommo_import_conversations c
    SET lease_owner = NULL, lease_until = NULL
    WHERE c.run_name = $1 AND c.lease_owner IS NOT NULL
      AND split_part(c.lease_owner, '#', 1) NOT IN (SELECT process_id FROM kommo_import_live_processes WHERE run_name = $1)
    RETURNING 1
), forgotten AS (
    DELETE FROM kommo_import_processes
    WHERE run_name = $1 AND expires_at < now() - interval '1 minute'
)
SELECT (SELECT count(*) FROM freed), (SELECT count(*) FROM kommo_import_live_processes WHERE run_name = $1)`

// markProgress records that the run moved (status shows since when nothing did).
const markProgress = `UPDATE kommo_import_runs SET progress_at = now() WHERE name = $1`

// deadAfter is how long a process may miss heartbeats before it counts as
// gone although its session lives on (a host cut off from the network).
func (im *Importer) deadAfter() time.Duration { return 4 * im.cfg.Heartbeat }

// session is the process's own database connection: it holds the advisory
// lock that proves the process alive, and carries the heartbeat.
type session struct {
	mu   sync.Mutex
	conn *pgxpool.Conn // nil until registered, and after a failure until the next beat
	key  int64

	sentAtBeat int64 // messages delivered at the last beat that recorded progress
	beats      int64
}

func newLockKey() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// register acquires the session connection, takes the process's lock on it
// and records the process.
func (im *Importer) register(ctx context.Context) error {
	im.sess.mu.Lock()
	defer im.sess.mu.Unlock()
	return im.registerLocked(ctx)
}

func (im *Importer) registerLocked(ctx context.Context) error {
	if im.sess.conn != nil {
		return nil
	}
	conn, err := im.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("register process: %w", err)
	}
	var got bool
	if err := conn.QueryRow(ctx, lockProcess, im.sess.key).Scan(&got); err != nil {
		conn.Release()
		return fmt.Errorf("register process: %w", err)
	}
	if !got {
		conn.Release()
		return errors.New("register process: the process lock is held by another session")
	}
	host, _ := os.Hostname()
	if _, err := conn.Exec(ctx, upsertProcess, im.cfg.Run, im.procID, host, os.Getpid(), im.sess.key, im.deadAfter().Seconds()); err != nil {
		// Closing the session is the sure way to release its lock.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return fmt.Errorf("register process: %w", err)
	}
	im.sess.conn = conn
	return nil
}

// dropSession closes a session that failed: its lock goes with it, and the
// next beat registers again on a new connection.
func (im *Importer) dropSessionLocked() {
	if im.sess.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = im.sess.conn.Conn().Close(ctx)
	im.sess.conn.Release()
	im.sess.conn = nil
}

func (im *Importer) unregister(ctx context.Context) {
	im.sess.mu.Lock()
	defer im.sess.mu.Unlock()
	if im.sess.conn == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := im.sess.conn.Exec(cctx, unregisterProcess, im.cfg.Run, im.procID); err != nil {
		im.log.Warn("unregister process", "err", err)
		im.dropSessionLocked()
		return
	}
	if _, err := im.sess.conn.Exec(cctx, unlockProcess, im.sess.key); err != nil {
		im.dropSessionLocked()
		return
	}
	im.sess.conn.Release()
	im.sess.conn = nil
}

// beat runs one heartbeat on the session: it records that the process is
// alive, renews the leases its workers hold, frees those of dead processes
// and reads the scope's pause. It returns the number of live processes.
func (im *Importer) beat(ctx context.Context) (int, error) {
	im.sess.mu.Lock()
	defer im.sess.mu.Unlock()
	if err := im.registerLocked(ctx); err != nil {
		return 0, err
	}
	n, err := im.beatLocked(ctx)
	if err != nil {
		im.dropSessionLocked()
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	return n, nil
}

func (im *Importer) beatLocked(ctx context.Context) (int, error) {
	conn := im.sess.conn
	host, _ := os.Hostname()
	if _, err := conn.Exec(ctx, upsertProcess, im.cfg.Run, im.procID, host, os.Getpid(), im.sess.key, im.deadAfter().Seconds()); err != nil {
		return 0, err
	}
	convs, owners := im.activeLeases()
	if len(convs) > 0 {
		if _, err := conn.Exec(ctx, renewLeases, im.cfg.Run, convs, owners, im.cfg.Lease.Seconds()); err != nil {
			return 0, err
		}
	}
	var freed, live int64
	if err := conn.QueryRow(ctx, reapLeases, im.cfg.Run).Scan(&freed, &live); err != nil {
		return 0, err
	}
	if freed > 0 {
		im.log.Info("freed the conversations of processes that are gone", "conversations", freed)
	}
	if sent := im.stats.sent.Load(); sent != im.sess.sentAtBeat {
		if _, err := conn.Exec(ctx, markProgress, im.cfg.Run); err != nil {
			return 0, err
		}
		im.sess.sentAtBeat = sent
	}
	if err := im.pacer.refresh(ctx); err != nil {
		return 0, err
	}
	n := max(int(live), 1)
	im.stats.processes.Store(int64(n))
	im.sess.beats++
	if n > 1 && im.sess.beats%5 == 0 {
		// Other processes deliver too: the run's progress comes from the
		// database now and then (a count over the run's rows).
		if err := im.loadProgressBase(ctx); err != nil {
			return 0, err
		}
	}
	if phase, _ := im.stats.phase.Load().(Phase); phase == PhaseSending {
		im.throughput.add(time.Now(), im.Progress().Done)
	}
	return n, nil
}

// activeLeases lists the conversations the workers hold now, with their owners.
func (im *Importer) activeLeases() (convs, owners []string) {
	im.activeMu.Lock()
	defer im.activeMu.Unlock()
	for owner, conv := range im.active {
		convs = append(convs, conv)
		owners = append(owners, owner)
	}
	return convs, owners
}

func (im *Importer) setActive(owner, conv string) {
	im.activeMu.Lock()
	defer im.activeMu.Unlock()
	if conv == "" {
		delete(im.active, owner)
		return
	}
	im.active[owner] = conv
}

// heartbeatLoop beats until ctx is done. A failed beat is logged, not fatal:
// the workers' own statements wait out a lost database.
func (im *Importer) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(im.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := im.beat(ctx); err != nil && ctx.Err() == nil {
			im.log.Warn("heartbeat failed", "err", err)
		}
	}
}
