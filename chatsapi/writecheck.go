package chatsapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptrace"
	"sync"
	"time"
)

// WithWriteCheck returns a context under which a Client's request runs check
// at the last moment before its first byte reaches the network: after the
// request is signed, its connection dialled or taken from the pool, and the
// transport has handed it to the connection's writer. An error from check
// keeps the request from being written at all: the call fails with an
// *Error that is not InDoubt and whose chain holds check's error (errors.Is),
// and the API never sees the request.
//
// A check made before calling the Client is not enough when the process can
// stall between the two (a frozen process, a starved goroutine, a dial that
// waits for a lost SYN to be sent again): the request goes out whenever the
// process runs again, after a lease it depended on or a slot of the rate it
// was given has passed. WithWriteCheck narrows that gap to the
// instructions between check and the write system call.
//
// Check must be quick and must not block: it runs on the connection's
// writer. Only the Client's own transport runs it; with Config.HTTPClient's
// transport it is not run.
func WithWriteCheck(ctx context.Context, check func() error) context.Context {
	return context.WithValue(ctx, writeCheckKey{}, check)
}

type writeCheckKey struct{}

// errAttemptOver refuses a request whose attempt's deadline passed before it
// could be written (the process was frozen, or starved, meanwhile, and the
// attempt's timer has not fired yet): a request is never written after the
// time its caller was promised it would have been given up by.
var errAttemptOver = errors.New("the attempt's time was over before the request could be written")

// RefusedError is the error of a request that a write check refused: none of
// it was written.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return fmt.Sprintf("request not written: %v", e.Err) }
func (e *RefusedError) Unwrap() error { return e.Err }

// writeCheck returns what the connection checks before the request made
// under actx is written: actx's deadline (the attempt's timeout), then the
// caller's check (WithWriteCheck) if any.
func writeCheck(actx context.Context) func() error {
	user, _ := actx.Value(writeCheckKey{}).(func() error)
	deadline, hasDeadline := actx.Deadline()
	return func() error {
		// time.Now and the deadline both carry the monotonic clock: a wall
		// clock step does not move this.
		if hasDeadline && !time.Now().Before(deadline) {
			return &RefusedError{Err: errAttemptOver}
		}
		if err := actx.Err(); err != nil {
			// Cancelled while the transport's writer still held it.
			return &RefusedError{Err: err}
		}
		if user != nil {
			if err := user(); err != nil {
				return &RefusedError{Err: err}
			}
		}
		return nil
	}
}

// armOnGotConn is the trace hook that arms the request's connection with
// check as soon as the transport has one for it.
func armOnGotConn(check func() error) func(httptrace.GotConnInfo) {
	return func(info httptrace.GotConnInfo) {
		if c := checkedConnOf(info.Conn); c != nil {
			c.arm(check)
		}
	}
}

// checkedConnOf finds the checkedConn under c (a TLS connection's is its
// underlying one), or nil: a transport that is not the Client's own.
func checkedConnOf(c net.Conn) *checkedConn {
	for c != nil {
		switch t := c.(type) {
		case *checkedConn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// checkedConn runs the check it was armed with on the first Write after
// arming: HTTP/1.1 carries one request at a time on a connection, and the
// transport arms it (GotConn) before handing the request to its writer. The
// check is disarmed once run, so the rest of the request (and its body) is
// written without it.
type checkedConn struct {
	net.Conn
	mu    sync.Mutex
	check func() error
}

func (c *checkedConn) arm(check func() error) {
	c.mu.Lock()
	c.check = check
	c.mu.Unlock()
}

func (c *checkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	check := c.check
	c.check = nil
	c.mu.Unlock()
	if check != nil {
		if err := check(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}

// checkedDial wraps dial's connections in checkedConn.
func checkedDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &checkedConn{Conn: c}, nil
	}
}
