package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dbUnavailable reports whether err means the database could not be reached
// or went away (restart, failover, dropped connection), as opposed to an
// error in what was asked of it. Such errors are waited out.
func dbUnavailable(err error) bool {
	var src *SourceError
	if err == nil || errors.As(err, &src) {
		// A source's read error (a truncated file ends in an unexpected
		// EOF too) is the source's, never the database's.
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case len(pgErr.Code) == 5 && pgErr.Code[:2] == "08": // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin shutdown, crash shutdown, cannot connect now
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// withDB runs fn, waiting out database outages with backoff for up to
// DBOutageLimit. Every statement passed here must be safe to run twice: a
// statement that committed but whose answer was lost runs again.
func (im *Importer) withDB(ctx context.Context, what string, fn func(context.Context) error) error {
	var since time.Time
	delay := 250 * time.Millisecond
	for {
		err := fn(ctx)
		if err != nil && ctx.Err() != nil && !errors.Is(err, ErrInterrupted) {
			// A hard stop: whatever the statement said, the run was stopped.
			return interrupted(CauseSignal, what, err)
		}
		if !dbUnavailable(err) || ctx.Err() != nil {
			if !since.IsZero() {
				im.stats.dbDown.Store(false)
				if err == nil {
					im.log.Warn("database is back; continuing", "after_seconds", time.Since(since).Seconds())
				}
			}
			return err
		}
		if since.IsZero() {
			since = time.Now()
			im.stats.dbDown.Store(true)
			im.log.Warn("database unavailable: pausing and retrying", "while", what, "err", err, "give_up_after", im.cfg.DBOutageLimit)
		}
		if time.Since(since) > im.cfg.DBOutageLimit {
			return interrupted(CauseDatabaseUnavailable, fmt.Sprintf("for %s, while %s", time.Since(since).Round(time.Second), what), err)
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return interrupted(CauseSignal, "", err)
		}
		delay = min(delay*2, 5*time.Second)
	}
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

// noDBWait runs fn once: for callers that do not wait out outages.
func noDBWait(ctx context.Context, _ string, fn func(context.Context) error) error { return fn(ctx) }

// interruptedOr is err, or an interruption by a signal when ctx ended.
func interruptedOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return interrupted(CauseSignal, "", ctx.Err())
	}
	return err
}

// refusedGrace is how long a process that has not reached its database yet
// keeps trying while the connection is refused: long enough for a
// restarting server, short for a wrong port.
const refusedGrace = 15 * time.Second

// WaitForDatabase runs fn (connect, migrate) until it succeeds, or fails
// for a reason other than the database being unreachable, or for longer
// than limit: a process that starts while PostgreSQL restarts waits for it,
// as a running one does. A refused connection (nothing listens: perhaps a
// wrong port) is tried for at most 15 s. log says what it waits for.
func WaitForDatabase(ctx context.Context, limit time.Duration, log *slog.Logger, fn func(context.Context) error) error {
	var since time.Time
	delay := 250 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || !dbUnavailable(err) || ctx.Err() != nil || limit <= 0 {
			return err
		}
		if since.IsZero() {
			since = time.Now()
			log.Warn("database unavailable: retrying", "err", err, "give_up_after", limit)
		}
		waited := time.Since(since)
		if waited > limit || (errors.Is(err, syscall.ECONNREFUSED) && waited > min(limit, refusedGrace)) {
			return err
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return interrupted(CauseSignal, "", err)
		}
		delay = min(delay*2, 5*time.Second)
	}
}
