package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// NotifySignals returns the channel main gives Run: SIGINT and SIGTERM.
// It also ignores SIGPIPE. Go's runtime ends a process whose write to fd 1
// or 2 meets a closed pipe; "kommo-import run ... 2>&1 | tee run.log" and
// Ctrl-C, which the terminal sends to tee too, would then kill the import
// at its next log line, with exit 141, no summary and no resume line. Ignored,
// such a write fails with EPIPE, which the log and the summary shrug off,
// and the soft stop ends as it would without the pipe (--log-file keeps
// what stderr can no longer take).
func NotifySignals() <-chan os.Signal {
	signal.Ignore(syscall.SIGPIPE)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch
}

// hardStopGrace is how long Run waits for a command after the hard stop
// before it returns without it (and main exits): what the command was
// doing, a request or a database call, may not honour its context promptly
// when the network or the database is gone.
var hardStopGrace = time.Second // a variable for tests

// stopper turns interrupt signals into a command's two stops, the way river
// splits fetching from working: the first signal closes soft (start nothing
// new, finish and checkpoint what is in flight), the second cancels the
// command's context (stop at once), and hardStopGrace later closes forced.
// A command with nothing to finish (soft is false) stops at once on the first.
type stopper struct {
	softFirst bool
	cancel    context.CancelFunc
	soft      chan struct{}  // closed at the first signal
	first     chan os.Signal // closed at the first signal, for commands that take a signal channel
	forced    chan struct{}  // closed hardStopGrace after the hard stop
	done      chan struct{}  // closed when the command has returned
	exited    chan struct{}  // closed when watch has returned
	closeOnce sync.Once
	signalled atomic.Bool
	hard      atomic.Bool // the second signal (or the first, for a command with nothing to finish)
	log       atomic.Pointer[slog.Logger]
}

// newStopper watches sig until close. The context it returns is cancelled
// at the hard stop.
func newStopper(ctx context.Context, sig <-chan os.Signal, stderr io.Writer, softFirst bool) (context.Context, *stopper) {
	ctx, cancel := context.WithCancel(ctx)
	s := &stopper{
		softFirst: softFirst, cancel: cancel,
		soft: make(chan struct{}), first: make(chan os.Signal), forced: make(chan struct{}),
		done: make(chan struct{}), exited: make(chan struct{}),
	}
	s.log.Store(slog.New(slog.NewTextHandler(stderr, logOptions(slog.LevelWarn))))
	go s.watch(sig)
	return ctx, s
}

// setLogger makes the stop messages go where the command logs.
func (s *stopper) setLogger(log *slog.Logger) { s.log.Store(log) }

// stopped reports whether a signal asked the command to stop.
func (s *stopper) stopped() bool { return s.signalled.Load() }

func (s *stopper) watch(sig <-chan os.Signal) {
	defer close(s.exited)
	for n := 1; ; n++ {
		select {
		case <-s.done:
			return
		case <-sig:
		}
		s.signalled.Store(true)
		if n == 1 {
			close(s.soft)
			close(s.first)
			if s.softFirst {
				s.log.Load().Warn("stopping: finishing the requests in flight (interrupt again to stop at once)")
				continue
			}
		}
		s.log.Load().Warn("stopping at once")
		s.hard.Store(true)
		s.cancel()
		select {
		case <-time.After(hardStopGrace):
			close(s.forced)
		case <-s.done:
		}
		return
	}
}

// close stops watching, once what watch logs is written; Run calls it
// before it returns.
func (s *stopper) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
	})
	<-s.exited
}
