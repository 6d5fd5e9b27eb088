// Package ledgertest generates chat histories for tests and checks what the
// simulator received against them: every message exactly once, in
// chronological order within its conversation, and the loud (silent=false)
// messages exactly where the plan says.
package ledgertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

// Msg is one generated message.
type Msg struct {
	Conv, ID string
	Msec     int64
}

// Gen makes convs conversations of 1..maxPer messages with distinct
// timestamps, returned in a shuffled (source) order.
func Gen(seed uint64, convs, maxPer int) []Msg {
	r := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2023, 3, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	var out []Msg
	for c := range convs {
		n := 1 + r.IntN(maxPer)
		for i := range n {
			out = append(out, Msg{
				Conv: fmt.Sprintf("conv-%03d", c),
				ID:   fmt.Sprintf("m-%03d-%04d", c, i),
				Msec: base + int64(c)*1000 + int64(i)*60_000 + int64(r.IntN(1000)),
			})
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// WriteJSONL writes msgs as a JSONL export in a temp dir and returns its path.
func WriteJSONL(t testing.TB, msgs []Msg) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	enc := json.NewEncoder(f)
	for _, m := range msgs {
		require.NoError(t, enc.Encode(wire.Payload{
			MsecTimestamp: m.Msec, MsgID: m.ID, ConversationID: m.Conv,
			Sender:  &wire.Participant{ID: "client-" + m.Conv, Name: "Client " + m.Conv},
			Message: &wire.Message{Type: wire.TypeText, Text: "hello from " + m.ID},
		}))
	}
	require.NoError(t, f.Close())
	return path
}

// ReadLedger reads a kommo-sim --ledger file.
func ReadLedger(t testing.TB, path string) []sim.LedgerEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []sim.LedgerEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var e sim.LedgerEntry
		require.NoError(t, dec.Decode(&e))
		out = append(out, e)
	}
	return out
}

// Check asserts exactly-once delivery of want, chronological order within
// each conversation, and the loud messages: loud maps a conversation to its
// one loud msgid; a nil loud skips that check, an empty one requires every
// message to be silent.
func Check(t testing.TB, entries []sim.LedgerEntry, want []Msg, loud map[string]string) {
	t.Helper()
	seen := map[string]int{}
	lastMsec := map[string]int64{}
	gotLoud := map[string][]string{}
	for _, e := range entries {
		seen[e.MsgID]++
		require.False(t, e.Duplicate, "msgid %s reached the API twice", e.MsgID)
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
	require.Len(t, entries, len(want), "the ledger holds messages that were not wanted")
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

// Newest returns each conversation's newest msgid: the loud ones.
func Newest(msgs []Msg) map[string]string {
	newest := map[string]Msg{}
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
