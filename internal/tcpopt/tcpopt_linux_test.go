package tcpopt

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func fd(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)
	var out int
	require.NoError(t, raw.Control(func(f uintptr) { out = int(f) }))
	return out
}

// The options are on the socket, and closing a connection with unsent or
// unanswered data resets it: the peer reads ECONNRESET, not a clean end.
func TestOptionsAndResetOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	d := Dialer(time.Second, Options{UserTimeout: 1500 * time.Millisecond, ResetOnClose: true,
		KeepAlive: net.KeepAliveConfig{Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}})
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	ut, err := unix.GetsockoptInt(fd(t, c), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	require.NoError(t, err)
	require.Equal(t, 1500, ut)
	l, err := unix.GetsockoptLinger(fd(t, c), unix.SOL_SOCKET, unix.SO_LINGER)
	require.NoError(t, err)
	require.Equal(t, unix.Linger{Onoff: 1, Linger: 0}, *l)
	idle, err := unix.GetsockoptInt(fd(t, c), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	require.NoError(t, err)
	require.Equal(t, 10, idle)

	server := <-accepted
	defer server.Close()
	_, err = c.Write([]byte("POST / HTTP/1.1\r\n"))
	require.NoError(t, err)
	require.NoError(t, c.Close())
	buf := make([]byte, 64)
	_ = server.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		_, err = server.Read(buf)
		if err != nil {
			break
		}
	}
	require.False(t, errors.Is(err, io.EOF), "a graceful close would let queued data through")
	require.True(t, errors.Is(err, syscall.ECONNRESET), "got %v", err)
}
