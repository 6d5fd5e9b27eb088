package sources

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

// agentsJSONL has four outgoing messages (a receiver) and one incoming:
// line 1 by id, line 2 by email (other case), line 3 with its own ref_id,
// line 4 by an agent nobody knows, line 5 from the client.
const agentsJSONL = `{"msgid":"a1","conversation_id":"c1","timestamp":1709284502,"sender":{"id":"agent-7","name":"Dana"},"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"hi"}}
{"msgid":"a2","conversation_id":"c1","timestamp":1709284503,"sender":{"id":"agent-8","name":"Oleg","profile":{"email":"Oleg@Acme.test"}},"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"hello"}}
{"msgid":"a3","conversation_id":"c1","timestamp":1709284504,"sender":{"id":"agent-9","name":"Ivan","ref_id":"kept-amojo"},"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"yo"}}
{"msgid":"a4","conversation_id":"c1","timestamp":1709284505,"sender":{"id":"agent-x","name":"Ghost","profile":{"email":"ghost@acme.test"}},"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"boo"}}
{"msgid":"a5","conversation_id":"c1","timestamp":1709284506,"sender":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"thanks"}}
{"msgid":"a6","conversation_id":"c1","timestamp":1709284507,"sender":{"id":"agent-x","name":"Ghost","profile":{"email":"ghost@acme.test"}},"receiver":{"id":"client-1","name":"Anna"},"message":{"type":"text","text":"boo again"}}
`

func TestUserMapping(t *testing.T) {
	t.Parallel()
	users := func(bot string) *UserMap {
		m := NewUserMap()
		require.NoError(t, m.AddAgent("agent-7", "amojo-dana"))
		m.AddKommoUser("oleg@acme.test", "Oleg K", "amojo-oleg")
		m.AddKommoUser("ghost@acme.test", "Ghost", "") // in Kommo, without amojo_id
		m.SetBotID(bot)
		return m
	}
	path := writeFile(t, "agents.jsonl", agentsJSONL)
	tests := []struct {
		name        string
		users       *UserMap
		wantRefs    map[string]string // msgid -> sender.ref_id
		wantErrs    []errAt
		wantErrText string
		wantAgents  []UnmatchedAgent
	}{
		{
			name:     "id, email, kept; unmatched rejected with line",
			users:    users(""),
			wantRefs: map[string]string{"a1": "amojo-dana", "a2": "amojo-oleg", "a3": "kept-amojo", "a5": ""},
			wantErrs: []errAt{{4, "sender.ref_id"}, {6, "sender.ref_id"}},
			wantErrText: `agents.jsonl:4: sender.ref_id: agent "agent-x" (ghost@acme.test) matches no Kommo user: ` +
				`Kommo user "Ghost" has no amojo_id; add them to --users or use --bot-id`,
			wantAgents: []UnmatchedAgent{{ID: "agent-x", Name: "Ghost", Email: "ghost@acme.test", Messages: 2, FirstLine: 4}},
		},
		{
			name:       "bot fallback",
			users:      users("bot-42"),
			wantRefs:   map[string]string{"a1": "amojo-dana", "a2": "amojo-oleg", "a3": "kept-amojo", "a4": "bot-42", "a5": "", "a6": "bot-42"},
			wantErrs:   []errAt{},
			wantAgents: []UnmatchedAgent{{ID: "agent-x", Name: "Ghost", Email: "ghost@acme.test", Messages: 2, FirstLine: 4, AsBot: true}},
		},
		{
			name:     "no map: Validate's plain rule",
			wantRefs: map[string]string{"a3": "kept-amojo", "a5": ""},
			wantErrs: []errAt{{1, "sender.ref_id"}, {2, "sender.ref_id"}, {4, "sender.ref_id"}, {6, "sender.ref_id"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := Spec{Kind: KindJSONL, Path: path, Users: tt.users, Now: nowFunc}
			r, err := Open(t.Context(), spec)
			require.NoError(t, err)
			defer r.Close()
			got := map[string]string{}
			errs := []errAt{}
			var first *LineError
			for {
				rec, err := r.Next(t.Context())
				if err == io.EOF {
					break
				}
				var le *LineError
				if errors.As(err, &le) {
					errs = append(errs, errAt{le.Line, le.Field})
					if first == nil {
						first = le
					}
					continue
				}
				require.NoError(t, err)
				got[rec.Payload.MsgID] = rec.Payload.Sender.RefID
			}
			require.Equal(t, tt.wantRefs, got)
			require.Equal(t, tt.wantErrs, errs)
			if tt.wantErrText != "" {
				require.Equal(t, tt.wantErrText, strings.Replace(first.Error(), path, "agents.jsonl", 1))
				require.ErrorIs(t, first, ErrUnmatchedAgent)
			}
			if tt.wantAgents == nil {
				require.Empty(t, r.UnmatchedAgents())
			} else {
				require.Equal(t, tt.wantAgents, r.UnmatchedAgents())
			}
		})
	}
}

func TestUnmatchedWithoutEmailNamesTheAgent(t *testing.T) {
	t.Parallel()
	m := NewUserMap()
	path := writeFile(t, "a.jsonl", strings.SplitAfter(agentsJSONL, "\n")[0])
	res := readAll(t, Spec{Kind: KindJSONL, Path: path, Users: m})
	require.Len(t, res.errs, 1)
	require.Contains(t, res.errs[0].Error(), `:1: sender.ref_id: agent "agent-7" (Dana) matches no Kommo user: add them to --users or use --bot-id`)
}

func TestUsersFileFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		wantID  map[string]string
		wantEm  map[string]string
		wantErr string
	}{
		{name: "csv agent and email columns, extra ignored",
			content: "\uFEFFname,Agent,email,amojo_id\nDana,agent-7,,amojo-dana\nOleg,,Oleg@Acme.test,amojo-oleg\n\nIvan,agent-9,ivan@acme.test,amojo-ivan\n",
			wantID:  map[string]string{"agent-7": "amojo-dana", "agent-9": "amojo-ivan"},
			wantEm:  map[string]string{"oleg@acme.test": "amojo-oleg", "ivan@acme.test": "amojo-ivan"}},
		{name: "csv agent that is an email",
			content: "agent,amojo_id\nDana@Acme.test,amojo-dana\n",
			wantID:  map[string]string{"Dana@Acme.test": "amojo-dana"},
			wantEm:  map[string]string{"dana@acme.test": "amojo-dana"}},
		{name: "json object",
			content: ` {"agent-7": "amojo-dana", "oleg@acme.test": "amojo-oleg"}`,
			wantID:  map[string]string{"agent-7": "amojo-dana", "oleg@acme.test": "amojo-oleg"},
			wantEm:  map[string]string{"oleg@acme.test": "amojo-oleg"}},
		{name: "json array",
			content: `[{"agent": "agent-7", "amojo_id": "amojo-dana"}, {"email": "OLEG@acme.test", "amojo_id": "amojo-oleg"}]`,
			wantID:  map[string]string{"agent-7": "amojo-dana"},
			wantEm:  map[string]string{"oleg@acme.test": "amojo-oleg"}},
		{name: "csv without amojo_id column", content: "agent,id\na,b\n", wantErr: "must name the columns amojo_id and agent and/or email"},
		{name: "csv empty amojo_id", content: "agent,amojo_id\nagent-7,amojo-dana\nagent-8,\n", wantErr: "users.txt:3: amojo_id is empty"},
		{name: "csv conflicting", content: "agent,amojo_id\nagent-7,amojo-dana\nagent-7,amojo-other\n", wantErr: `users.txt:3: "agent-7" is mapped to both "amojo-dana" and "amojo-other"`},
		{name: "csv no key", content: "agent,email,amojo_id\n,,amojo-x\n", wantErr: "users.txt:2: neither agent nor email given"},
		{name: "json array bad entry", content: `[{"agent": "a", "amojo_id": ""}]`, wantErr: "entry 1: amojo_id is empty"},
		{name: "json wrong shape", content: `{"a": 1}`, wantErr: "want {"},
		{name: "json duplicate key", content: `{"agent-7": "amojo-dana", "agent-8": "amojo-oleg", "agent-7": "amojo-other"}`,
			wantErr: `users file users.txt: "agent-7": "agent-7" is mapped to both "amojo-dana" and "amojo-other"`},
		{name: "json duplicate key far down", content: bigUsersJSON(2000, 1990),
			wantErr: `users file users.txt: "agent-3": "agent-3" is mapped to both "amojo-3" and "amojo-other"`},
		{name: "json duplicate email key in other case", content: `{"dana@acme.test": "amojo-dana", "Dana@Acme.test": "amojo-other"}`,
			wantErr: `is mapped to both "amojo-dana" and "amojo-other"`},
		{name: "json repeated key with the same value", content: `{"agent-7": "amojo-dana", "agent-7": "amojo-dana"}`,
			wantID: map[string]string{"agent-7": "amojo-dana"}, wantEm: map[string]string{}},
		{name: "json object with data after it", content: `{"agent-7": "amojo-dana"} {"agent-8": "amojo-oleg"}`, wantErr: "after the object"},
		{name: "json object not closed", content: `{"agent-7": "amojo-dana"`, wantErr: "want {"},
		{name: "empty", content: " \n", wantErr: "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewUserMap()
			err := m.Read(strings.NewReader(tt.content), "users.txt")
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantID, m.byID)
			require.Equal(t, tt.wantEm, m.byEmail)
		})
	}
}

// bigUsersJSON is a users object of n agents whose entry at dupAt maps
// agent-3 again, to another Kommo user.
func bigUsersJSON(n, dupAt int) string {
	var b strings.Builder
	b.WriteString("{\n")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		if i == dupAt {
			b.WriteString(`  "agent-3": "amojo-other"`)
			continue
		}
		fmt.Fprintf(&b, "  %q: %q", fmt.Sprintf("agent-%d", i), fmt.Sprintf("amojo-%d", i))
	}
	b.WriteString("\n}\n")
	return b.String()
}

func TestUsersFileFirstWinsOverKommo(t *testing.T) {
	t.Parallel()
	m := NewUserMap()
	require.NoError(t, m.Load("../testdata/users.csv"))
	require.NoError(t, m.AddEmail("dana@acme.test", "from-file"))
	m.AddKommoUser("DANA@acme.test", "Dana", "from-kommo")
	m.AddKommoUser("new@acme.test", "New", "amojo-new")
	require.Equal(t, map[string]string{"dana@acme.test": "from-file", "new@acme.test": "amojo-new"}, m.byEmail)
	require.Equal(t, map[string]string{"kommo-user-17": "4f0a2c1e-8d1b-4a9e-b0c3-2b6f1e7d9a10"}, m.byID)
}

// The sample's outgoing messages already carry ref_ids; testdata/users.csv
// maps their agent, so the messy sample's m-0007 (no ref_id) becomes valid.
func TestSampleUsersFile(t *testing.T) {
	t.Parallel()
	without := readAll(t, Spec{Kind: KindCSV, Path: "../testdata/messages-messy.csv"})
	m := NewUserMap()
	require.NoError(t, m.Load("../testdata/users.csv"))
	with := readAll(t, Spec{Kind: KindCSV, Path: "../testdata/messages-messy.csv", Users: m})
	require.Equal(t, without.stats.Records+1, with.stats.Records)
	require.Contains(t, with.msgids(), "m-0007")
	require.NotContains(t, without.msgids(), "m-0007")

	clean := readAll(t, Spec{Kind: KindCSV, Path: "../testdata/messages.csv", Users: m})
	require.Equal(t, wantSample(t), clean.payloads(), "ref_ids already present are kept")
}

func BenchmarkResolve(b *testing.B) {
	m := NewUserMap()
	for i := range 1000 {
		require.NoError(b, m.AddAgent(fmt.Sprintf("agent-%d", i), fmt.Sprintf("amojo-%d", i)))
	}
	m.AddKommoUser("oleg@acme.test", "Oleg", "amojo-oleg")
	byID := wire.Payload{Sender: &wire.Participant{ID: "agent-500", Name: "A"}, Receiver: &wire.Participant{ID: "c", Name: "C"}}
	byEmail := wire.Payload{Sender: &wire.Participant{ID: "agent-x", Name: "O", Profile: &wire.Profile{Email: "oleg@acme.test"}},
		Receiver: &wire.Participant{ID: "c", Name: "C"}}
	for _, bc := range []struct {
		name string
		p    wire.Payload
	}{{"id", byID}, {"email", byEmail}} {
		b.Run(bc.name, func(b *testing.B) {
			p := bc.p
			b.ReportAllocs()
			for b.Loop() {
				p.Sender.RefID = ""
				if m.resolve(&p) != mapMatched {
					b.Fatal("no match")
				}
			}
		})
	}
}
