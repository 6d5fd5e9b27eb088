// Package tcpopt sets the TCP options that keep a request from outliving
// the caller's interest in it, on the connections to the Chats API and to
// PostgreSQL:
//
//   - TCP_USER_TIMEOUT: the kernel gives a connection up once data it sent
//     has gone unacknowledged that long, even while the process is frozen
//     (SIGSTOP, a VM pause), so a request stuck in the send queue behind a
//     half-dead network is dropped, not delivered minutes later;
//   - SO_LINGER 0 (for the Chats API): closing a connection resets it and
//     discards what was not sent yet, so a request the client gave up on
//     (a timeout, a cancellation) cannot reach the API after the client has
//     looked the message up and decided to send it again.
//
// On systems without these options (not Linux) the dialer is the plain one.
package tcpopt

import (
	"net"
	"time"
)

// Options are the options a dialer sets on each connection.
type Options struct {
	// UserTimeout: TCP_USER_TIMEOUT; 0 leaves the system's default.
	UserTimeout time.Duration
	// ResetOnClose: SO_LINGER with a zero timeout.
	ResetOnClose bool
	// KeepAlive probes an idle connection: after Idle, every Interval, Count
	// times; zero Idle leaves Go's default.
	KeepAlive net.KeepAliveConfig
}

// Dialer returns a dialer with timeout for the connect and o on every
// connection it makes.
func Dialer(timeout time.Duration, o Options) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, Control: control(o)}
	if o.KeepAlive.Idle > 0 {
		d.KeepAliveConfig = o.KeepAlive
		d.KeepAliveConfig.Enable = true
	}
	return d
}
