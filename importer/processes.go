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
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// A process working a run is alive while its database session holds its
// advisory lock: the session ends when the process dies, kill -9 included,
// so its conversations are free within a heartbeat (Que's lockers tie
// liveness to pg_backend_pid the same way). The heartbeat stays as the
// fallback for a host cut off from the network, whose session the server may
// keep for minutes: a process whose row expires_at has passed is gone too.
// kommo_import_live_processes (migrations/002) applies both rules.

// deadAfter is how long a process may miss heartbeats before it counts as
// gone although its session lives on (a host cut off from the network).
func (im *Importer) deadAfter() time.Duration { return 4 * im.cfg.Heartbeat }

// hbFinish is how long the end of a run waits for the heartbeat in flight
// before it cancels it (a database that does not answer).
const hbFinish = 2 * time.Second

// session is the process's own database connection: it holds the advisory
// lock that proves the process alive, and carries the heartbeat.
type session struct {
	mu   sync.Mutex
	conn *pgxpool.Conn // nil until registered, and after a failure until the next beat
	key  int64

	sentAtBeat int64 // messages delivered at the last beat that recorded progress
	beats      int64

	// liveness is this process's record of its heartbeats, in its own
	// monotonic clock (see alive and aliveSince).
	live liveness
}

// aliveMargin is kept off the liveness deadline (deadAfter): the clocks of
// this process and of the database may tick at slightly different speeds.
// Measured from the start of a beat, whose upsert the database runs later,
// the window is already on the safe side; a sixteenth (250 ms of 4 s) is
// ample and leaves the window wide enough for a database whose round trips
// are slow.
func aliveMargin(deadAfter time.Duration) time.Duration { return deadAfter / 16 }

// liveness follows the heartbeats that recorded this process alive. The
// database counts the process alive until deadAfter past each heartbeat,
// and reaps its leases once that passes: so its leases are surely still its
// own only while its heartbeats have followed each other without a gap. A
// process that was frozen (SIGSTOP, a VM pause) or cut off from the
// database longer than that may have lost them, although its first beat
// after the gap records it alive again.
type liveness struct {
	mu    sync.Mutex
	last  time.Time // start of the last beat that went through
	since time.Time // start of the first beat of the current unbroken chain
}

// beat records a heartbeat that started at start and was answered at done:
// it continues the chain when it was recorded before the previous one's
// deadline (done, not start: the database recorded it some time between).
func (l *liveness) beat(start, done time.Time, deadAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() || !done.Before(l.last.Add(deadAfter-aliveMargin(deadAfter))) {
		l.since = start
	}
	l.last = start
}

// aliveSince reports whether the database still counts this process alive
// by this process's own clock, and has without a gap since at (false when
// the chain started after at: the leases held at at may be another's).
func (l *liveness) aliveSince(now, at time.Time, deadAfter time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.last.IsZero() && now.Sub(l.last) < deadAfter-aliveMargin(deadAfter) && !l.since.After(at)
}

// alive reports whether the database still counts this process alive (by
// its own clock) and has without a gap since at: the paced attempt asks it
// right before a send whose lease the checkpoint at at proved, since a
// request written after a gap could duplicate one that another process,
// having taken the conversation over, has sent meanwhile.
func (im *Importer) alive(at time.Time) bool {
	return im.sess.live.aliveSince(im.cfg.Clock.Now(), at, im.deadAfter())
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
	q := store.New(conn)
	got, err := q.TryLockProcess(ctx, im.sess.key)
	if err != nil {
		conn.Release()
		return fmt.Errorf("register process: %w", err)
	}
	if !got {
		conn.Release()
		return errors.New("register process: the process lock is held by another session")
	}
	started := im.cfg.Clock.Now()
	if err := q.Heartbeat(ctx, im.processRow()); err != nil {
		// Closing the session is the sure way to release its lock.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		conn.Release()
		return fmt.Errorf("register process: %w", err)
	}
	im.sess.conn = conn
	im.sess.live.beat(started, im.cfg.Clock.Now(), im.deadAfter())
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
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if im.sess.conn == nil {
		// The session failed (its lock went with it): the row alone is
		// left, which would count the process live until its deadline.
		if err := store.New(im.pool).Unregister(cctx, im.cfg.Run, im.procID); err != nil {
			im.log.Warn("unregister process", "err", err)
		}
		return
	}
	q := store.New(im.sess.conn)
	if err := q.Unregister(cctx, im.cfg.Run, im.procID); err != nil {
		im.log.Warn("unregister process", "err", err)
		im.dropSessionLocked()
		return
	}
	if err := q.UnlockProcess(cctx, im.sess.key); err != nil {
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
	q := store.New(im.sess.conn)
	started := im.cfg.Clock.Now()
	if err := q.Heartbeat(ctx, im.processRow()); err != nil {
		return 0, err
	}
	im.sess.live.beat(started, im.cfg.Clock.Now(), im.deadAfter())
	convs, owners := im.activeLeases()
	if len(convs) > 0 {
		if err := q.RenewLeases(ctx, im.cfg.Run, convs, owners, im.cfg.Lease); err != nil {
			return 0, err
		}
	}
	freed, live, err := q.ReapLeases(ctx, im.cfg.Run, im.procID, im.cfg.RequestTimeout)
	if err != nil {
		return 0, err
	}
	if freed > 0 {
		im.log.Info("freed the conversations of processes that are gone", "conversations", freed)
	}
	if sent := im.stats.sent.Load(); sent != im.sess.sentAtBeat {
		if err := q.MarkProgress(ctx, im.cfg.Run); err != nil {
			return 0, err
		}
		im.sess.sentAtBeat = sent
	}
	if err := im.pacer.refresh(ctx); err != nil {
		return 0, err
	}
	if im.link != nil {
		// Another process's 429 on the main API parks this one's calls too.
		if err := im.link.att.pacer.refresh(ctx); err != nil {
			return 0, err
		}
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

// processRow is this process's row in the processes table.
func (im *Importer) processRow() store.Process {
	host, _ := os.Hostname()
	return store.Process{Run: im.cfg.Run, ID: im.procID, Host: host, PID: os.Getpid(), LockKey: im.sess.key,
		DeadAfter: im.deadAfter(), RequestTimeout: im.cfg.RequestTimeout}
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

// heartbeatLoop beats until stop is closed or ctx is done. A failed beat is
// logged, not fatal: the workers' own statements wait out a lost database.
// stop ends the loop between beats, never during one: a beat cancelled
// mid-statement drops the session (dropSession), and the process's row
// stayed behind, with its lock held by the server until the cancelled
// statement ended, so the next run of the scope saw the process live.
func (im *Importer) heartbeatLoop(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(im.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := im.beat(ctx); err != nil && ctx.Err() == nil {
			im.log.Warn("heartbeat failed", "err", err)
		}
	}
}
