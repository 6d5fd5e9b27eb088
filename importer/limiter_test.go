package importer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimiterPauseBlocksEveryCallerAndStepsDown(t *testing.T) {
	l := NewLimiter(100)
	require.NoError(t, l.Wait(context.Background()))
	l.Pause(300 * time.Millisecond)
	require.InDelta(t, 50, l.Rate(), 0.001, "a 429 halves the rate")
	l.Pause(100 * time.Millisecond)
	require.InDelta(t, 50, l.Rate(), 0.001, "a 429 inside a pause does not step down again")

	start := time.Now()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, l.Wait(context.Background()))
			require.GreaterOrEqual(t, time.Since(start), 290*time.Millisecond, "no caller sends into the pause")
		}()
	}
	wg.Wait()
	require.EqualValues(t, 4, l.Requests())
}

func TestLimiterRecoversSlowly(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(8)
	l.now = func() time.Time { return now }
	l.Pause(time.Second)
	l.Pause(0) // still inside the first pause: no second step
	require.InDelta(t, 4, l.Rate(), 0.001)
	now = now.Add(2 * time.Second)
	l.Pause(time.Millisecond) // a second 429 after the pause: steps down again
	require.InDelta(t, 2, l.Rate(), 0.001)

	now = now.Add(recoverEvery + time.Second)
	require.NoError(t, l.Wait(context.Background()))
	require.InDelta(t, 2*recoverStep, l.Rate(), 0.001, "one step up after a quiet interval")
	require.NoError(t, l.Wait(context.Background()))
	require.InDelta(t, 2*recoverStep, l.Rate(), 0.001, "not two steps at once")
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	l := NewLimiter(1)
	l.Pause(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, l.Wait(ctx), context.DeadlineExceeded)
	require.Zero(t, l.Requests())
}

func TestLimiterShare(t *testing.T) {
	l := NewLimiter(6)
	l.SetShare(2)
	require.InDelta(t, 2, l.Rate(), 0.001)
	l.SetShare(-1)
	require.Zero(t, l.Rate(), "unlimited")
}
