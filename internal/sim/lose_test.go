package sim

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFaultAcceptLoseAnswersAndStoresNothing: the client gets a 200 with
// ids, the chat exists, and neither the ledger nor history holds the
// message; sending it again is no duplicate.
func TestFaultAcceptLoseAnswersAndStoresNothing(t *testing.T) {
	e := newEnv(t, Options{Faults: mustFaults(t, "accept-lose=1")})
	resp, b := e.send(msgBody("m-1", "conv-1", 1000_000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	res := decode[sendResult](t, b).NewMessage
	require.NotEmpty(t, res.MsgID)
	require.Equal(t, "m-1", res.RefID)
	chatID, ok := e.sim.ChatID("conv-1")
	require.True(t, ok, "the chat is created")
	require.Equal(t, chatID, res.ConversationID)
	require.Empty(t, e.sim.Ledger())
	resp, _ = e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "history does not show it")
	st := e.sim.Stats()
	require.EqualValues(t, 1, st.Lost)
	require.EqualValues(t, 1, st.Faults[FaultAcceptLose])
	require.Zero(t, st.Accepted)

	require.NoError(t, e.sim.SetFaults(Faults{}, nil))
	resp, _ = e.send(msgBody("m-1", "conv-1", 1000_000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Zero(t, e.sim.Stats().Duplicates, "the lost message was never stored: sending it again is its first copy")
	require.Len(t, e.sim.Ledger(), 1)
}

// TestHistoryOrderArrival: with HistoryOrderArrival a message sent after a
// newer one of its chat is listed after it (newest first by arrival); by
// time (the default) it takes its place.
func TestHistoryOrderArrival(t *testing.T) {
	for _, tc := range []struct {
		order string
		want  []string
	}{
		{"", []string{"m-3", "m-2", "m-1"}},
		{HistoryOrderTime, []string{"m-3", "m-2", "m-1"}},
		{HistoryOrderArrival, []string{"m-2", "m-3", "m-1"}},
	} {
		e := newEnv(t, Options{HistoryOrder: tc.order})
		_, b := e.send(msgBody("m-1", "conv-1", 1000_000))
		e.send(msgBody("m-3", "conv-1", 3000_000))
		e.send(msgBody("m-2", "conv-1", 2000_000)) // arrives after m-3, which is newer
		chatID := decode[sendResult](t, b).NewMessage.ConversationID
		_, h := e.do(http.MethodGet, historyPath(chatID, ""), nil, nil)
		require.Equal(t, tc.want, clientIDs(decode[historyResp](t, h)), "order %q", tc.order)
	}
	_, err := New(Options{ScopeID: "s", Secret: "s", HistoryOrder: "random"})
	require.ErrorContains(t, err, "HistoryOrder")
}
