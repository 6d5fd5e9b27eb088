package importer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

// historyFilter rewrites the simulator's history answers: it drops the
// entries whose client_id is in drop, and can answer the first requests with
// an injected status instead.
type historyFilter struct {
	next http.Handler

	mu   sync.Mutex
	drop map[string]bool
	// fail holds statuses to answer the next history requests with, in order.
	fail []int
}

func (f *historyFilter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/history") {
		f.next.ServeHTTP(w, r)
		return
	}
	f.mu.Lock()
	var status int
	if len(f.fail) > 0 {
		status, f.fail = f.fail[0], f.fail[1:]
	}
	drop := f.drop
	f.mu.Unlock()
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"title":"injected","status":%d,"detail":"injected by the test"}`+"\n", status)
		return
	}
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || len(drop) == 0 {
		copyResponse(w, rec, rec.Body.Bytes())
		return
	}
	var body struct {
		Messages []map[string]any `json:"messages"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	kept := body.Messages[:0]
	for _, m := range body.Messages {
		if msg, _ := m["message"].(map[string]any); !drop[fmt.Sprint(msg["client_id"])] {
			kept = append(kept, m)
		}
	}
	body.Messages = kept
	b, _ := json.Marshal(body)
	copyResponse(w, rec, b)
}

// set replaces the entries to drop and queues statuses to answer with.
func (f *historyFilter) set(drop map[string]bool, fail ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = drop
	f.fail = fail
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder, body []byte) {
	for k, v := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// countingHistory counts History calls made through it.
type countingHistory struct {
	api   importer.HistoryReader
	calls atomic.Int64
}

func (c *countingHistory) History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error) {
	c.calls.Add(1)
	return c.api.History(ctx, chatID, offset, limit)
}

func (h *harness) historyClient(t *testing.T) *countingHistory {
	t.Helper()
	c, err := chatsapi.New(chatsapi.Config{BaseURL: h.url, ScopeID: testScope, Secret: testSecret, Timeout: 2 * time.Second})
	require.NoError(t, err)
	return &countingHistory{api: c}
}

// verifyCase is one conversation of 120 messages (three history pages) and
// four of 3.
func verifyCase() []ledgertest.Msg {
	base := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC).UnixMilli()
	var msgs []ledgertest.Msg
	for i := range 120 {
		msgs = append(msgs, ledgertest.Msg{Conv: "conv-big", ID: fmt.Sprintf("big-%03d", i), Msec: base + int64(i)*1000})
	}
	for c := range 4 {
		for i := range 3 {
			msgs = append(msgs, ledgertest.Msg{Conv: fmt.Sprintf("conv-%d", c), ID: fmt.Sprintf("s%d-%d", c, i), Msec: base + int64(i)*1000})
		}
	}
	return msgs
}

func TestVerifyCleanRun(t *testing.T) {
	h := newHarness(t, sim.Options{})
	filter := &historyFilter{}
	frontHarness(t, h, func(next http.Handler) http.Handler { filter.next = next; return filter })
	sum := h.run("v", ledgertest.WriteJSONL(t, verifyCase()), nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)

	api := h.historyClient(t)
	rep, err := verifyRun(h, api, "v", 0)
	require.NoError(t, err)
	require.True(t, rep.Clean(), "%+v", rep)
	require.EqualValues(t, 5, rep.Conversations)
	require.EqualValues(t, 5, rep.ConversationsTotal)
	require.EqualValues(t, 132, rep.Checked)
	require.EqualValues(t, 132, rep.Found)
	// conv-big: pages of 50, 50, 20; each small one: one page.
	require.EqualValues(t, 3+4, rep.Requests)
	require.EqualValues(t, rep.Requests, api.calls.Load())

	rep, err = verifyRun(h, api, "v", 2)
	require.NoError(t, err)
	require.True(t, rep.Clean())
	require.EqualValues(t, 2, rep.Conversations)
	require.EqualValues(t, 5, rep.ConversationsTotal)

	_, err = verifyRun(h, api, "nope", 0)
	require.ErrorIs(t, err, importer.ErrNoRun)
}

func TestVerifyFindsMissingDuplicatedAndUnexpected(t *testing.T) {
	h := newHarness(t, sim.Options{})
	filter := &historyFilter{}
	frontHarness(t, h, func(next http.Handler) http.Handler { filter.next = next; return filter })
	msgs := verifyCase()
	path := ledgertest.WriteJSONL(t, msgs)
	sum := h.run("v", path, nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)

	// "Kommo" lost big-007 (second page) and s1-0, and got s2-1 twice: the
	// simulator creates a new message for a repeated msgid, as the real API may.
	filter.set(map[string]bool{"big-007": true, "s1-0": true})
	client, err := chatsapi.New(chatsapi.Config{BaseURL: h.url, ScopeID: testScope, Secret: testSecret})
	require.NoError(t, err)
	var p wire.Payload
	var staged []byte
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT payload FROM kommo_import_messages WHERE msgid = 's2-1'`).Scan(&staged))
	require.NoError(t, json.Unmarshal(staged, &p))
	p.Silent = true
	_, err = client.SendMessage(context.Background(), &p)
	require.NoError(t, err)
	// The database holds s3-2 as failed although it is in the chat.
	_, err = h.pool.Exec(context.Background(), `UPDATE kommo_import_messages SET state = 'failed' WHERE msgid = 's3-2'`)
	require.NoError(t, err)

	rep, err := verifyRun(h, h.historyClient(t), "v", 0)
	require.NoError(t, err)
	require.False(t, rep.Clean())
	chat := func(conv string) string {
		id, ok := h.sim.ChatID(conv)
		require.True(t, ok)
		return id
	}
	require.Equal(t, []importer.VerifyIssue{
		{MsgID: "s1-0", ConversationID: "conv-1", ChatID: chat("conv-1")},
		{MsgID: "big-007", ConversationID: "conv-big", ChatID: chat("conv-big")},
	}, rep.Missing)
	require.Equal(t, []importer.VerifyIssue{{MsgID: "s2-1", ConversationID: "conv-2", ChatID: chat("conv-2"), Count: 2}}, rep.Duplicated)
	require.Equal(t, []importer.VerifyIssue{{MsgID: "s3-2", ConversationID: "conv-3", ChatID: chat("conv-3"), Count: 1, State: "failed"}}, rep.Unexpected)
	require.EqualValues(t, 2, rep.MissingCount)
	require.EqualValues(t, 1, rep.DuplicatedCount)
	require.EqualValues(t, 1, rep.UnexpectedCount)
	require.EqualValues(t, 131, rep.Checked)
	require.EqualValues(t, 128, rep.Found)
}

// History older than every message of the run is not read: a re-sync run's
// verification costs what the new messages cost.
func TestVerifyStopsAtOlderHistory(t *testing.T) {
	h := newHarness(t, sim.Options{})
	base := time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC).UnixMilli()
	var old, recent []ledgertest.Msg
	for i := range 130 {
		old = append(old, ledgertest.Msg{Conv: "conv-x", ID: fmt.Sprintf("old-%03d", i), Msec: base + int64(i)*1000})
	}
	for i := range 10 {
		recent = append(recent, ledgertest.Msg{Conv: "conv-x", ID: fmt.Sprintf("new-%03d", i), Msec: base + int64(200+i)*1000})
	}
	require.Equal(t, importer.OutcomeDone, h.run("old", ledgertest.WriteJSONL(t, old), nil).Outcome)
	require.Equal(t, importer.OutcomeDone, h.run("recent", ledgertest.WriteJSONL(t, recent), nil).Outcome)

	rep, err := verifyRun(h, h.historyClient(t), "recent", 0)
	require.NoError(t, err)
	require.True(t, rep.Clean())
	require.EqualValues(t, 10, rep.Found)
	require.EqualValues(t, 1, rep.Requests)

	rep, err = verifyRun(h, h.historyClient(t), "old", 0)
	require.NoError(t, err)
	require.True(t, rep.Clean())
	require.EqualValues(t, 130, rep.Found)
	require.EqualValues(t, 3, rep.Requests) // 140 in the chat: pages of 50, 50, 40
}

func TestVerifyRetriesAndWaitsOutRateLimits(t *testing.T) {
	h := newHarness(t, sim.Options{})
	filter := &historyFilter{}
	frontHarness(t, h, func(next http.Handler) http.Handler { filter.next = next; return filter })
	msgs := verifyCase()[120:] // the four small conversations
	require.Equal(t, importer.OutcomeDone, h.run("v", ledgertest.WriteJSONL(t, msgs), nil).Outcome)

	filter.set(nil, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable)
	client, err := chatsapi.New(chatsapi.Config{BaseURL: h.url, ScopeID: testScope, Secret: testSecret})
	require.NoError(t, err)
	rep, err := verifyWith(context.Background(), h.pool, client, importer.VerifyConfig{
		Run: "v", Rate: -1, BackoffBase: 5 * time.Millisecond, DefaultPause: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	require.True(t, rep.Clean())
	require.EqualValues(t, 4+3, rep.Requests, "every attempt is counted")
	require.GreaterOrEqual(t, rep.Elapsed, 0.02, "the 429 paused verification")

	// A permanent refusal stops verification with the API's error.
	filter.set(nil, http.StatusBadRequest)
	_, err = verifyRun(h, client, "v", 0)
	apiErr, ok := chatsapi.AsError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)

	// A 5xx that does not end interrupts it.
	filter.set(nil, 500, 500, 500)
	_, err = verifyWith(context.Background(), h.pool, client, importer.VerifyConfig{Run: "v", Rate: -1, MaxAttempts: 3, BackoffBase: time.Millisecond})
	require.ErrorIs(t, err, importer.ErrInterrupted)
}

// verifyRun verifies run with the default settings, unpaced, and a
// reconcile window of a millisecond: what was sent before is settled.
func verifyRun(h *harness, api importer.HistoryReader, run string, sample int) (*importer.VerifyReport, error) {
	time.Sleep(2 * time.Millisecond)
	return verifyWith(context.Background(), h.pool, api, importer.VerifyConfig{Run: run, Sample: sample, Rate: -1, ReconcileWait: time.Millisecond})
}

// verifyWith verifies cfg.Run: NewVerifier, then Run.
func verifyWith(ctx context.Context, pool *pgxpool.Pool, api importer.HistoryReader, cfg importer.VerifyConfig) (*importer.VerifyReport, error) {
	v, err := importer.NewVerifier(ctx, pool, api, cfg)
	if err != nil {
		return nil, err
	}
	return v.Run(ctx)
}
