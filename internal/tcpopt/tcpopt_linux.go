package tcpopt

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func control(o Options) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if o.UserTimeout > 0 {
				if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(o.UserTimeout.Milliseconds())); serr != nil {
					return
				}
			}
			if o.ResetOnClose {
				serr = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
