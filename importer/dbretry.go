package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// dbUnavailable reports whether err means the database could not be reached
// or went away (restart, failover, dropped connection), as opposed to an
// error in what was asked of it. Such errors are waited out.
func dbUnavailable(err error) bool {
	if err == nil {
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
		if !dbUnavailable(err) || ctx.Err() != nil {
			if err == nil && !since.IsZero() {
				im.stats.dbDown.Store(false)
				im.log.Warn("database is back; continuing", "after", time.Since(since).Round(time.Second))
			}
			return err
		}
		if since.IsZero() {
			since = time.Now()
			im.stats.dbDown.Store(true)
			im.log.Warn("database unavailable: pausing and retrying", "while", what, "err", err, "give_up_after", im.cfg.DBOutageLimit)
		}
		if time.Since(since) > im.cfg.DBOutageLimit {
			return fmt.Errorf("%w: the database has been unavailable for %s (%s): %w",
				ErrInterrupted, time.Since(since).Round(time.Second), what, err)
		}
		if err := sleepCtx(ctx, delay); err != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		delay = min(delay*2, 5*time.Second)
	}
}
