package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/migrations"
)

// A process whose own heartbeat reached the database later than its
// liveness span allows (a database that stalled between the beat and the
// reap) is not live by the view, but it is the one reaping: it must not
// free its own conversations. It did: a 1 s stall with a 200 ms heartbeat
// left three conversations' messages in doubt, parked for 28 s
// (TestADatabaseStallDoesNotSlowTheRestOfTheRun).
func TestTheReaperNeverFreesItsOwnLeases(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	_, err := migrations.Apply(ctx, pool)
	require.NoError(t, err)
	q := store.New(pool)
	const scope, name = "scope-reap", "reap-1"
	_, err = q.OpenRun(ctx, store.RunParams{Name: name, Scope: scope, Source: "jsonl:/reap", Notify: "newest", Rate: 5, OnFailure: "hold"})
	require.NoError(t, err)
	stage(t, pool, scope, name, []store.StageRow{
		{MsgID: "a1", ConversationID: "mine", Line: 1, Msec: 1000, Payload: []byte(`{}`)},
		{MsgID: "b1", ConversationID: "theirs", Line: 2, Msec: 2000, Payload: []byte(`{}`)},
	})

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	me := store.New(conn)
	got, err := me.TryLockProcess(ctx, 91)
	require.NoError(t, err)
	require.True(t, got)
	// A beat whose span is over by the time the reap runs.
	require.NoError(t, me.Heartbeat(ctx, store.Process{Run: name, ID: "me", Host: "h", PID: 1, LockKey: 91, DeadAfter: time.Millisecond}))
	for _, owner := range []string{"me#0", "gone#0"} {
		claimed, err := q.ClaimConversation(ctx, store.ClaimParams{Run: name, Scope: scope, Owner: owner, Lease: time.Minute, Notify: "newest"})
		require.NoError(t, err)
		require.Len(t, claimed, 1, owner)
	}
	time.Sleep(20 * time.Millisecond)

	freed, live, err := me.ReapLeases(ctx, name, "me", 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 0}, [2]int64{freed, live}, "the gone process's lease is freed; the reaper's own is kept, though its beat came late")
	claimed, err := q.ClaimConversation(ctx, store.ClaimParams{Run: name, Scope: scope, Owner: "other#0", Lease: time.Minute, Notify: "newest"})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.Equal(t, "theirs", claimed[0].ID, "the reaper's conversation is still its own")
}
