package chatsapi_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
)

var errNo = errors.New("the caller's lease has passed")

// requireRefused checks that err is a write check's refusal of check's
// error: not in doubt, nothing of the request written.
func requireRefused(t *testing.T, err, cause error) {
	t.Helper()
	require.ErrorIs(t, err, cause)
	var refused *chatsapi.RefusedError
	require.ErrorAs(t, err, &refused)
	e, ok := chatsapi.AsError(err)
	require.True(t, ok, "%v", err)
	require.False(t, e.InDoubt, "a refused request was not written: %v", err)
	require.Equal(t, chatsapi.KindRetryable, e.Kind)
}

// A write check that says no keeps the request off the wire, on a new
// connection and on one from the pool alike, and one that says yes lets it
// through.
func TestWriteCheckRefusesBeforeTheFirstByte(t *testing.T) {
	f := newFake(t, nil)
	c := newClient(t, f.srv.URL, nil)
	ctx := context.Background()

	_, err := c.SendMessage(chatsapi.WithWriteCheck(ctx, func() error { return errNo }), textPayload("m-1", "hi"))
	requireRefused(t, err, errNo)
	require.Empty(t, f.requests(), "a new connection")

	_, err = c.SendMessage(chatsapi.WithWriteCheck(ctx, func() error { return nil }), textPayload("m-2", "hi"))
	require.NoError(t, err)
	_, err = c.SendMessage(chatsapi.WithWriteCheck(ctx, func() error { return errNo }), textPayload("m-3", "hi"))
	requireRefused(t, err, errNo)
	_, err = c.History(chatsapi.WithWriteCheck(ctx, func() error { return errNo }), "chat-1", 0, 10)
	requireRefused(t, err, errNo)
	_, err = c.SendMessage(ctx, textPayload("m-4", "hi"))
	require.NoError(t, err)
	var got []string
	for _, r := range f.requests() {
		got = append(got, string(r.Body))
	}
	require.Len(t, got, 2, "m-2 and m-4 only, the refused ones on a pooled connection (and the transport's retry on a new one) not")
	require.Contains(t, got[0], `"m-2"`)
	require.Contains(t, got[1], `"m-4"`)
}

// backlogZeroListener listens on 127.0.0.1 with an accept queue of one and
// fills it: the kernel drops the next SYN, and the client sends it again
// only after its initial retransmission timeout (1 s on Linux), the stall
// of a lost SYN on a real network. Accepting the filler (serving) lets the
// retransmission through.
func backlogZeroListener(t *testing.T) net.Listener {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	file := os.NewFile(uintptr(fd), "backlog-0")
	l, err := net.FileListener(file)
	require.NoError(t, err)
	require.NoError(t, file.Close())
	t.Cleanup(func() { _ = l.Close() })
	filler, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = filler.Close() })
	return l
}

// A request whose caller checked its lease and slot and then stalled on
// the way (here a dial whose SYN was dropped and sent again a second
// later; a frozen process or a starved goroutine alike) is checked again
// right before it is written, and not written when the check no longer
// holds: it would reach the API after the lease another process has taken
// over, or on top of the slots that came meanwhile.
func TestWriteCheckCatchesAStallAfterTheCallersChecks(t *testing.T) {
	f := newFake(t, nil)
	l := backlogZeroListener(t)
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 5 * time.Second}
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, "http://"+l.Addr().String(), nil)

	const valid = 400 * time.Millisecond
	start := time.Now()
	check := func() error {
		if time.Since(start) > valid {
			return errNo
		}
		return nil
	}
	require.NoError(t, check(), "the caller's own check, right before the call, passes")
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = srv.Serve(l) // takes the filler: the SYN sent again gets through
	}()
	_, err := c.SendMessage(chatsapi.WithWriteCheck(context.Background(), check), textPayload("m-1", "hi"))
	took := time.Since(start)
	requireRefused(t, err, errNo)
	require.Greater(t, took, valid, "the dial stalled past the check's validity (else this proves nothing)")
	require.Empty(t, f.requests(), "the stalled request was written %s after its check", took)

	_, err = c.SendMessage(context.Background(), textPayload("m-2", "hi"))
	require.NoError(t, err, "the connection works once the stall is over")
	require.Len(t, f.requests(), 1)
}
