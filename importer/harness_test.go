package importer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/importer/chatsapi"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/sources"
)

const (
	testScope  = "chan-1_acct-1"
	testSecret = signer.Secret("test-secret-3f9a2c")
)

// harness is one database and one simulator shared by the importers of a test.
type harness struct {
	t    *testing.T
	pool *pgxpool.Pool
	sim  *sim.Server
	url  string
}

func newHarness(t *testing.T, opts sim.Options) *harness {
	t.Helper()
	pool := pgtest.Pool(t)
	_, err := migrations.Apply(context.Background(), pool)
	require.NoError(t, err)
	opts.ScopeID = testScope
	opts.Secret = testSecret
	s, err := sim.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &harness{t: t, pool: pool, sim: s, url: srv.URL}
}

// importer returns an Importer for run name over the JSONL file path.
func (h *harness) importer(name, path string, mod func(*importer.Config)) *importer.Importer {
	h.t.Helper()
	return h.importerFor(name, path, testScope, mod)
}

// importerForScope is importer for another scope than the simulator's.
func (h *harness) importerForScope(name, path, scope string) *importer.Importer {
	h.t.Helper()
	return h.importerFor(name, path, scope, nil)
}

func (h *harness) importerFor(name, path, scope string, mod func(*importer.Config)) *importer.Importer {
	h.t.Helper()
	cfg := importer.Config{
		Run: name, ScopeID: scope,
		Source:      sources.Spec{Kind: "jsonl", Path: path},
		SourceLabel: "jsonl:" + path,
		Rate:        -1, Workers: 4,
		ReconcileWait: 50 * time.Millisecond,
		BackoffBase:   10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Heartbeat: 200 * time.Millisecond, Lease: 5 * time.Second,
		MaxAttempts: 30,
	}
	if mod != nil {
		mod(&cfg)
	}
	limiter := importer.NewLimiter(cfg.Rate)
	client, err := chatsapi.New(chatsapi.Config{BaseURL: h.url, ScopeID: cfg.ScopeID, Secret: testSecret, Limiter: limiter, Timeout: 2 * time.Second})
	require.NoError(h.t, err)
	im, err := importer.New(h.pool, client, limiter, cfg)
	require.NoError(h.t, err)
	return im
}

func (h *harness) run(name, path string, mod func(*importer.Config)) *importer.Summary {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := h.importer(name, path, mod).Run(ctx, nil)
	require.NoError(h.t, err)
	return sum
}

// msg is one generated message.
type msg struct {
	Conv, ID string
	Msec     int64
}

// genMessages makes convs conversations of 1..maxPer messages with distinct,
// shuffled timestamps, returned in a random (source) order.
func genMessages(seed uint64, convs, maxPer int) []msg {
	r := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2023, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	var out []msg
	for c := range convs {
		n := 1 + r.IntN(maxPer)
		for i := range n {
			out = append(out, msg{
				Conv: fmt.Sprintf("conv-%03d", c),
				ID:   fmt.Sprintf("m-%03d-%04d", c, i),
				Msec: base + int64(c)*1000 + int64(i)*60_000 + int64(r.IntN(1000)),
			})
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func writeJSONL(t *testing.T, msgs []msg) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	for _, m := range msgs {
		require.NoError(t, enc.Encode(chatsapi.Payload{
			MsecTimestamp: m.Msec, MsgID: m.ID, ConversationID: m.Conv,
			Sender:  &chatsapi.Participant{ID: "client-" + m.Conv, Name: "Client " + m.Conv},
			Message: &chatsapi.Message{Type: "text", Text: "hello from " + m.ID},
		}))
	}
	require.NoError(t, f.Close())
	return path
}

// checkLedger asserts exactly-once delivery of want, chronological order
// within each conversation, and one loud message per conversation in loud
// (the newest of each); a nil loud skips the loud check, an empty one
// requires every message to be silent.
func checkLedger(t *testing.T, entries []sim.LedgerEntry, want []msg, loud map[string]string) {
	t.Helper()
	seen := map[string]int{}
	lastMsec := map[string]int64{}
	gotLoud := map[string][]string{}
	for _, e := range entries {
		seen[e.MsgID]++
		require.GreaterOrEqual(t, e.MsecTimestamp, lastMsec[e.ConversationID], "out of order in %s at %s", e.ConversationID, e.MsgID)
		lastMsec[e.ConversationID] = e.MsecTimestamp
		if !e.Silent {
			gotLoud[e.ConversationID] = append(gotLoud[e.ConversationID], e.MsgID)
		}
	}
	var dups, lost []string
	for _, m := range want {
		switch seen[m.ID] {
		case 0:
			lost = append(lost, m.ID)
		case 1:
		default:
			dups = append(dups, m.ID)
		}
	}
	require.Empty(t, lost, "lost messages")
	require.Empty(t, dups, "duplicated messages")
	require.Len(t, entries, len(want), "ledger holds messages that were not wanted")
	if loud == nil {
		return
	}
	for conv, id := range loud {
		require.Equal(t, []string{id}, gotLoud[conv], "loud message of %s", conv)
	}
	for conv, ids := range gotLoud {
		_, ok := loud[conv]
		require.True(t, ok, "conversation %s got loud messages %v but should have none", conv, ids)
	}
}

// newestOf returns each conversation's newest message id.
func newestOf(msgs []msg) map[string]string {
	newest := map[string]msg{}
	for _, m := range msgs {
		if n, ok := newest[m.Conv]; !ok || m.Msec > n.Msec {
			newest[m.Conv] = m
		}
	}
	out := map[string]string{}
	for c, m := range newest {
		out[c] = m.ID
	}
	return out
}

func sortedConvs(msgs []msg) []string {
	var cs []string
	for _, m := range msgs {
		if !slices.Contains(cs, m.Conv) {
			cs = append(cs, m.Conv)
		}
	}
	slices.Sort(cs)
	return cs
}
