package chatsapi

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A request never goes out after its attempt's time is over: a process
// frozen between handing the request to the connection and writing it
// (the attempt's timer has not fired yet when it thaws) finds the deadline
// passed at the write, and writes nothing. The caller was promised the
// request would be given up by then (another process waits that long
// before it looks the message up and sends it again).
func TestCheckedConnRefusesAfterTheAttemptsDeadline(t *testing.T) {
	client, server := net.Pipe()
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	c := &checkedConn{Conn: client}

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	c.arm(writeCheck(ctx))
	n, err := c.Write([]byte("POST / HTTP/1.1\r\n"))
	require.Zero(t, n)
	require.ErrorIs(t, err, errAttemptOver)

	// Disarmed by the refusal, and armed again for the next request: one
	// within its time goes out, and the rest of it without a second check.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	calls := 0
	c.arm(writeCheck(WithWriteCheck(ctx, func() error { calls++; return nil })))
	got := make(chan []byte, 2)
	go func() {
		for range 2 {
			b := make([]byte, 64)
			n, _ := server.Read(b)
			got <- b[:n]
		}
	}()
	for _, part := range []string{"POST / HTTP/1.1\r\n", "\r\n"} {
		_, err = c.Write([]byte(part))
		require.NoError(t, err)
	}
	require.Equal(t, "POST / HTTP/1.1\r\n", string(<-got))
	require.Equal(t, "\r\n", string(<-got))
	require.Equal(t, 1, calls)
	require.False(t, errors.Is(err, errAttemptOver))
}
