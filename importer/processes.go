package importer

import (
	"context"
	"fmt"
	"os"
	"time"
)

const registerProcess = `
INSERT INTO kommo_import_processes (run_name, process_id, host, pid) VALUES ($1, $2, $3, $4)
ON CONFLICT (run_name, process_id) DO UPDATE SET heartbeat_at = now()`

const unregisterProcess = `DELETE FROM kommo_import_processes WHERE run_name = $1 AND process_id = $2`

// heartbeat records that this process is alive, renews the leases of the
// conversations it works, and reads how many processes share the run and
// whether one of them saw a 429.
const heartbeat = `
WITH hb AS (
    UPDATE kommo_import_processes SET heartbeat_at = now() WHERE run_name = $1 AND process_id = $2
), lease AS (
    UPDATE kommo_import_conversations SET lease_until = now() + make_interval(secs => $3)
    WHERE run_name = $1 AND split_part(lease_owner, '#', 1) = $2 AND NOT done AND lease_until > now()
)
SELECT
    (SELECT count(*) FROM kommo_import_processes
     WHERE run_name = $1 AND (process_id = $2 OR heartbeat_at > now() - make_interval(secs => $4))),
    COALESCE((SELECT extract(epoch FROM paused_until - now()) FROM kommo_import_runs WHERE name = $1), 0)::float8`

const recordPause = `
UPDATE kommo_import_runs
SET paused_until = GREATEST(COALESCE(paused_until, now()), now() + make_interval(secs => $2))
WHERE name = $1`

// deadAfter is how long a process may miss heartbeats before it counts as
// gone: its share of the rate goes to the others, its conversations to whoever claims them.
func (im *Importer) deadAfter() time.Duration { return 4 * im.cfg.Heartbeat }

func (im *Importer) register(ctx context.Context) error {
	host, _ := os.Hostname()
	if _, err := im.pool.Exec(ctx, registerProcess, im.cfg.Run, im.procID, host, os.Getpid()); err != nil {
		return fmt.Errorf("register process: %w", err)
	}
	return nil
}

func (im *Importer) unregister() {
	ctx, cancel := checkpointCtx(context.Background())
	defer cancel()
	if _, err := im.pool.Exec(ctx, unregisterProcess, im.cfg.Run, im.procID); err != nil {
		im.log.Warn("unregister process", "err", err)
	}
}

// beat runs one heartbeat and applies what it learnt: this process's share
// of the run's rate, and any pause another process recorded. It returns the
// number of live processes.
func (im *Importer) beat(ctx context.Context) (int, error) {
	var n int
	var paused float64
	err := im.pool.QueryRow(ctx, heartbeat, im.cfg.Run, im.procID, im.cfg.Lease.Seconds(), im.deadAfter().Seconds()).Scan(&n, &paused)
	if err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	n = max(n, 1)
	if im.cfg.Rate > 0 {
		im.limiter.SetShare(im.cfg.Rate / float64(n))
	}
	if paused > 0 {
		im.limiter.PauseUntil(time.Now().Add(time.Duration(paused*float64(time.Second))), false)
	}
	im.stats.processes.Store(int64(n))
	return n, nil
}

// heartbeatLoop beats until ctx is done. A failed beat is logged, not fatal:
// the leases outlive several beats, and the workers' own statements fail
// loudly if the database is really gone.
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

// pause stops this process's requests for d and records the pause for the
// run's other processes.
func (im *Importer) pause(ctx context.Context, d time.Duration) {
	im.limiter.Pause(d)
	im.stats.rateLimited.Add(1)
	im.log.Warn("rate limited by the API: pausing every worker", "for", d.Round(time.Second), "rate_now", im.limiter.Rate())
	cctx, cancel := checkpointCtx(ctx)
	defer cancel()
	if _, err := im.pool.Exec(cctx, recordPause, im.cfg.Run, d.Seconds()); err != nil {
		im.log.Warn("record pause", "err", err)
	}
}
