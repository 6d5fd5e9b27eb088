package importer

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
)

// The one retry policy: what every caller does after a failed attempt.
func TestDecide(t *testing.T) {
	rp := retryPolicy{backoffBase: time.Second, backoffMax: 8 * time.Second, defaultPause: time.Minute}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		failures int
		act      action
		inDoubt  bool
		after    time.Duration // 0: not checked
		stop     StopReason
	}{
		{name: "5xx is retried, in doubt", err: &chatsapi.Error{Status: 500, Kind: chatsapi.KindRetryable, InDoubt: true}, failures: 1, act: actRetry, inDoubt: true},
		{name: "refused connection is retried, not in doubt", err: &chatsapi.Error{Kind: chatsapi.KindRetryable}, failures: 1, act: actRetry},
		{name: "429 pauses for retry-after", err: &chatsapi.Error{Status: 429, Kind: chatsapi.KindRateLimited, RetryAfter: 300 * time.Second}, act: actPause, after: 300 * time.Second},
		{name: "429 without retry-after pauses the default", err: &chatsapi.Error{Status: 429, Kind: chatsapi.KindRateLimited}, act: actPause, after: time.Minute},
		{name: "400 fails the message", err: &chatsapi.Error{Status: 400, Kind: chatsapi.KindPermanent}, act: actFail},
		{name: "blocked stops", err: &chatsapi.Error{Status: 403, Kind: chatsapi.KindBlocked}, act: actStop, stop: StopBlocked},
		{name: "bad signature stops", err: &chatsapi.Error{Status: 403, Kind: chatsapi.KindBadSignature}, act: actStop, stop: StopBadSignature},
		{name: "skewed clock stops as skew", err: &chatsapi.Error{Status: 403, Kind: chatsapi.KindBadSignature, ServerDate: time.Now().Add(20 * time.Minute)}, act: actStop, stop: StopClockSkew},
		{name: "unknown scope stops", err: &chatsapi.Error{Status: 404, Kind: chatsapi.KindPermanent, ErrorType: chatsapi.ErrorTypeNotRegistered}, act: actStop, stop: StopUnknownScope},
		{name: "redirect stops", err: &chatsapi.Error{Status: http.StatusFound, Kind: chatsapi.KindPermanent}, act: actStop, stop: StopUnknownScope},
		{name: "a cancelled context aborts", ctx: cancelled, err: &chatsapi.Error{Kind: chatsapi.KindRetryable}, act: actAbort},
		{name: "a database error of the pacer is retried", err: errors.New("rate schedule: connection refused"), failures: 2, act: actRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			d := rp.decide(ctx, tt.err, tt.failures)
			require.Equal(t, tt.act, d.act)
			require.Equal(t, tt.inDoubt, d.inDoubt)
			if tt.after != 0 {
				require.Equal(t, tt.after, d.after)
			}
			if tt.stop != 0 {
				var stop *StopError
				require.ErrorAs(t, d.err, &stop)
				require.Equal(t, tt.stop, stop.Reason)
			}
		})
	}
}

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	rp := retryPolicy{backoffBase: time.Second, backoffMax: 8 * time.Second}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 10: 8 * time.Second} {
		for range 20 {
			d := rp.backoff(n)
			require.GreaterOrEqual(t, d, want/2, "retry %d", n)
			require.LessOrEqual(t, d, want, "retry %d", n)
		}
	}
}
