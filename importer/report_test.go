package importer_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/sim"
)

func TestReportListsFailedAndRejected(t *testing.T) {
	h := newHarness(t, sim.Options{})
	// j-02 is valid in the messy file; the API refuses it.
	ref := &refuser{ids: map[string]bool{"j-02": true}, armed: true}
	frontHarness(t, h, func(next http.Handler) http.Handler { ref.next = next; return ref })
	sum := h.run("messy", "../testdata/messages-messy.jsonl", nil)
	require.Equal(t, importer.OutcomeIncomplete, sum.Outcome)
	ctx := context.Background()

	var failed []importer.FailedMessage
	require.NoError(t, importer.EachFailed(ctx, h.pool, "messy", func(m *importer.FailedMessage) error {
		failed = append(failed, *m)
		return nil
	}))
	require.Len(t, failed, 1)
	require.Equal(t, importer.FailedMessage{
		MsgID: "j-02", ConversationID: "conv-anna-001", Line: 2, Attempts: 1,
		LastError: failed[0].LastError,
	}, failed[0])
	require.Contains(t, failed[0].LastError, "400 INVALID_DATA")
	require.Contains(t, failed[0].LastError, "refused for j-02")

	var rejects []importer.Reject
	require.NoError(t, importer.EachReject(ctx, h.pool, "messy", func(r *importer.Reject) error {
		rejects = append(rejects, importer.Reject{Line: r.Line, Field: r.Field, Reason: r.Reason, Raw: append([]byte(nil), r.Raw...)})
		return nil
	}))
	require.Len(t, rejects, int(sum.Rejected))
	require.EqualValues(t, 12, sum.Rejected)
	for i := 1; i < len(rejects); i++ {
		require.Less(t, rejects[i-1].Line, rejects[i].Line, "source order")
	}
	require.Equal(t, int64(4), rejects[0].Line)
	require.Empty(t, rejects[0].Field)
	require.Contains(t, rejects[0].Reason, "invalid JSON")
	require.Contains(t, string(rejects[0].Raw), `"msgid": "j-04"`)

	// The callback's error stops the listing and comes back as is.
	stop := errors.New("enough")
	n := 0
	err := importer.EachReject(ctx, h.pool, "messy", func(*importer.Reject) error {
		n++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, n)

	require.ErrorIs(t, importer.EachFailed(ctx, h.pool, "nope", func(*importer.FailedMessage) error { return nil }), importer.ErrNoRun)
	require.ErrorIs(t, importer.EachReject(ctx, h.pool, "nope", func(*importer.Reject) error { return nil }), importer.ErrNoRun)
}
