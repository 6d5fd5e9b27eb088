package importer

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/wire"
)

// countingAPI answers every new_message as accepted and counts what
// reached it.
func countingAPI(t *testing.T) (*chatsapi.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"new_message":{"msgid":"amo-1","ref_id":"m-1"}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := chatsapi.New(chatsapi.Config{BaseURL: srv.URL, ScopeID: "scope", Secret: "secret", Timeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c, &n
}

func sendOne(ctx context.Context, c *chatsapi.Client) error {
	_, err := c.SendMessage(ctx, &wire.Payload{Timestamp: 1700000000, MsecTimestamp: 1700000000000, MsgID: "m-1",
		ConversationID: "c-1", Sender: &wire.Participant{ID: "u-1", Name: "U"},
		Message: &wire.Message{Type: wire.TypeText, Text: "hi"}, Silent: true})
	return err
}

// A send that stalls after attempt let it go (here the fake clock moves on
// in do, before the client writes: a frozen or starved process, a dial
// whose SYN was lost) is checked again right before its first byte: later
// than maxLate, it is not written (it would land on the slots that came
// meanwhile), its checkpoint is undone as not made, the slot counts as
// given up, and it goes out in a later slot. Before, it went out late.
func TestAStalledSendIsNotWrittenLate(t *testing.T) {
	a, clock := fakeAttempter(10)
	c, reached := countingAPI(t)
	var undone []bool
	var tries int
	var err error
	clock.run(func() {
		_, err = a.attempt(context.Background(), nil, request{
			checkpoint:   func(context.Context) error { return nil },
			uncheckpoint: func(_ context.Context, m bool) error { undone = append(undone, m); return nil },
			do: func(ctx context.Context) error {
				if tries++; tries == 1 {
					clock.Advance(maxLate + time.Millisecond)
				}
				return sendOne(ctx, c)
			},
		}, 0)
	})
	require.NoError(t, err)
	require.Equal(t, 2, tries)
	require.EqualValues(t, 1, reached.Load(), "the stalled try reached the API")
	require.Equal(t, []bool{false}, undone)
	require.EqualValues(t, 1, a.pacer.Late())
}

// A lease that passes while the send is on its way (the guard said yes
// before the request and no at its first byte) keeps the request unwritten:
// the conversation may be another process's by now, which will look the
// message up and send it. attempt returns errGuard, the checkpoint undone.
func TestALeaseThatPassesOnTheWayStopsTheSend(t *testing.T) {
	a, clock := fakeAttempter(10)
	c, reached := countingAPI(t)
	var undone []bool
	var asked int
	var err error
	clock.run(func() {
		_, err = a.attempt(context.Background(), nil, request{
			checkpoint:   func(context.Context) error { return nil },
			uncheckpoint: func(_ context.Context, m bool) error { undone = append(undone, m); return nil },
			guard:        func(time.Time) bool { asked++; return asked == 1 },
			do:           func(ctx context.Context) error { return sendOne(ctx, c) },
		}, 0)
	})
	require.ErrorIs(t, err, errGuard)
	require.Equal(t, 2, asked, "asked before the request and at its first byte")
	require.Zero(t, reached.Load())
	require.Equal(t, []bool{false}, undone)
}

// With debug logging, every request written logs its timeline in
// nanoseconds, in the form scripts/rate-trace.py (make soak TRACE=1) reads.
func TestEveryRequestWrittenIsTracedAtDebug(t *testing.T) {
	a, clock := fakeAttempter(10)
	var buf bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, reached := countingAPI(t)
	var err error
	clock.run(func() {
		_, err = a.attempt(context.Background(), nil, request{do: func(ctx context.Context) error { return sendOne(ctx, c) }}, 0)
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, reached.Load())
	require.Regexp(t, `msg="request written" slot_ns=\d+ reserved_ns=-?\d+ wrote_ns=\d+ round_trip_ns=\d+ shared=(true|false)\n`, buf.String())
}
