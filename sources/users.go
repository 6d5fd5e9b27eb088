package sources

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// ErrUnmatchedAgent: an outgoing message's sender (an agent of the old
// system) matches no Kommo user, and no bot fallback is set.
var ErrUnmatchedAgent = errors.New("matches no Kommo user")

// UserMap says which Kommo user wrote each outgoing message. The Chats API
// shows a message with a receiver as written by the Kommo user whose amojo_id
// is sender.ref_id (or by the channel's bot, with the bot id), so the agents
// of the old system must be mapped to Kommo users before validation.
//
// Build it with NewUserMap, Load or Read (a --users file), AddKommoUser (the
// account's users, matched by email) and SetBotID; then put it in Spec.Users.
// It must not change after Open: readers share it without locking.
type UserMap struct {
	byID    map[string]string // the source's sender.id -> amojo_id
	byEmail map[string]string // lower-cased email -> amojo_id
	noAmojo map[string]string // lower-cased email -> name of a Kommo user without amojo_id
	botID   string
}

// NewUserMap returns an empty map: every agent is unmatched until added.
func NewUserMap() *UserMap {
	return &UserMap{byID: map[string]string{}, byEmail: map[string]string{}, noAmojo: map[string]string{}}
}

// SetBotID makes unmatched agents' messages go out as the channel's bot
// (sender.ref_id = id) instead of being rejected; "" turns that off.
func (m *UserMap) SetBotID(id string) { m.botID = strings.TrimSpace(id) }

// BotID is the fallback set by SetBotID.
func (m *UserMap) BotID() string { return m.botID }

// HasAgent reports whether agent (a sender.id of the source) is mapped to a
// Kommo user.
func (m *UserMap) HasAgent(agent string) bool {
	_, ok := m.byID[agent]
	return ok && agent != ""
}

// Len is the number of ids and emails that map to a Kommo user.
func (m *UserMap) Len() int { return len(m.byID) + len(m.byEmail) }

// AddAgent maps agent, a sender.id of the source or an email address (it
// contains "@"; matched case-insensitively with sender.profile.email), to
// amojoID. Mapping the same agent to two different amojo_ids is an error.
func (m *UserMap) AddAgent(agent, amojoID string) error {
	agent, amojoID = strings.TrimSpace(agent), strings.TrimSpace(amojoID)
	if agent == "" || amojoID == "" {
		return errors.New("agent and amojo_id must both be given")
	}
	if err := put(m.byID, agent, amojoID); err != nil {
		return err
	}
	if strings.Contains(agent, "@") {
		return m.AddEmail(agent, amojoID)
	}
	return nil
}

// AddEmail maps an email address (case-insensitively) to amojoID.
func (m *UserMap) AddEmail(email, amojoID string) error {
	email, amojoID = strings.ToLower(strings.TrimSpace(email)), strings.TrimSpace(amojoID)
	if email == "" || amojoID == "" {
		return errors.New("email and amojo_id must both be given")
	}
	return put(m.byEmail, email, amojoID)
}

func put(m map[string]string, k, v string) error {
	if old, ok := m[k]; ok && old != v {
		return fmt.Errorf("%q is mapped to both %q and %q", k, old, v)
	}
	m[k] = v
	return nil
}

// AddKommoUser adds a user of the Kommo account, matched by email. An email
// already mapped (by a --users file) keeps its mapping: the file is the
// operator's explicit word. A user without amojoID maps nothing, but an agent
// with that email is then told why it matched nobody.
func (m *UserMap) AddKommoUser(email, name, amojoID string) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return
	}
	if _, ok := m.byEmail[email]; ok {
		return
	}
	if amojoID = strings.TrimSpace(amojoID); amojoID == "" {
		m.noAmojo[email] = name
		return
	}
	m.byEmail[email] = amojoID
}

// Load reads a users file (see Read).
func (m *UserMap) Load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	return m.Read(f, path)
}

// UsersFileHelp describes the users file for --help.
const UsersFileHelp = "map the source's agents to Kommo users: `FILE` is CSV with a header naming\n" +
	"the columns agent (the sender id in the source, or an email) and/or email, and amojo_id\n" +
	"(other columns, e.g. name, are ignored); or JSON, {\"agent id or email\": \"amojo_id\", ...}\n" +
	"or [{\"agent\": ..., \"email\": ..., \"amojo_id\": ...}, ...]"

// Read adds the mappings of a users file, named name in errors: CSV with a
// header row naming the columns agent and/or email, and amojo_id (others
// are ignored; names are case-insensitive), or JSON (told apart by its first
// character): an object {"agent or email": "amojo_id"} or an array of
// {"agent", "email", "amojo_id"} objects. A bad row is a *LineError.
func (m *UserMap) Read(r io.Reader, name string) error {
	br := bufio.NewReader(r)
	// Skip a BOM and leading space to see the first character.
	for {
		c, _, err := br.ReadRune()
		if err == io.EOF {
			return fmt.Errorf("users file %s is empty", name)
		}
		if err != nil {
			return fmt.Errorf("users file %s: %w", name, err)
		}
		if c == '\uFEFF' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		_ = br.UnreadRune()
		if c == '{' || c == '[' {
			return m.readJSON(br, name)
		}
		return m.readCSV(br, name)
	}
}

func (m *UserMap) readCSV(r io.Reader, name string) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("users file %s: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	agentCol, hasAgent := col["agent"]
	emailCol, hasEmail := col["email"]
	amojoCol, hasAmojo := col["amojo_id"]
	if !hasAmojo || (!hasAgent && !hasEmail) {
		return fmt.Errorf("users file %s: the header must name the columns amojo_id and agent and/or email, got %q", name, strings.Join(header, ","))
	}
	field := func(rec []string, i int, ok bool) string {
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return &LineError{File: name, Line: int64(line), Err: err}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if err := m.addRow(field(rec, agentCol, hasAgent), field(rec, emailCol, hasEmail), field(rec, amojoCol, hasAmojo)); err != nil {
			return &LineError{File: name, Line: int64(line), Err: err}
		}
	}
}

func (m *UserMap) addRow(agent, email, amojoID string) error {
	if amojoID == "" {
		return errors.New("amojo_id is empty")
	}
	if agent == "" && email == "" {
		return errors.New("neither agent nor email given")
	}
	if agent != "" {
		if err := m.AddAgent(agent, amojoID); err != nil {
			return err
		}
	}
	if email != "" {
		return m.AddEmail(email, amojoID)
	}
	return nil
}

func (m *UserMap) readJSON(r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("users file %s: %w", name, err)
	}
	data = bytes.TrimSpace(data)
	if data[0] == '{' {
		return m.readJSONObject(data, name)
	}
	var rows []struct {
		Agent   string `json:"agent"`
		Email   string `json:"email"`
		AmojoID string `json:"amojo_id"`
	}
	if err := json.Unmarshal(data, &rows); err != nil {
		return fmt.Errorf("users file %s: want [{\"agent\": ..., \"email\": ..., \"amojo_id\": ...}, ...]: %w", name, err)
	}
	for i, row := range rows {
		if err := m.addRow(row.Agent, row.Email, row.AmojoID); err != nil {
			return fmt.Errorf("users file %s: entry %d: %w", name, i+1, err)
		}
	}
	return nil
}

// readJSONObject reads {"agent or email": "amojo_id", ...} in file order
// with a token walk: encoding/json would keep the last of two equal keys
// without a word, and silently lose the operator's first mapping.
func (m *UserMap) readJSONObject(data []byte, name string) error {
	const shape = `want {"agent id or email": "amojo_id", ...}`
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the '{'
		return fmt.Errorf("users file %s: %s: %w", name, shape, err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("users file %s: %s: %w", name, shape, err)
		}
		key := tok.(string) // object keys are strings, or Token fails
		var amojoID string
		if err := dec.Decode(&amojoID); err != nil {
			return fmt.Errorf("users file %s: %s: %q: %w", name, shape, key, err)
		}
		if err := m.addRow(key, "", amojoID); err != nil {
			return fmt.Errorf("users file %s: %q: %w", name, key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the '}'
		return fmt.Errorf("users file %s: %s: %w", name, shape, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("users file %s: %s: more data after the object", name, shape)
	}
	return nil
}

// mapping is what resolve did to one payload.
type mapping int

const (
	mapNone      mapping = iota // nothing to do: incoming, or ref_id given
	mapMatched                  // ref_id set to a Kommo user's amojo_id
	mapBot                      // ref_id set to the bot id
	mapUnmatched                // nobody: the caller rejects the record
)

// resolve sets sender.ref_id of an outgoing message (one with a receiver)
// that has none: by sender.id, then by sender.profile.email, then the bot.
// It costs a map lookup or two, and nothing for other messages.
func (m *UserMap) resolve(p *wire.Payload) mapping {
	s := p.Sender
	if p.Receiver == nil || s == nil || s.RefID != "" {
		return mapNone
	}
	if id, ok := m.byID[s.ID]; ok && s.ID != "" {
		s.RefID = id
		return mapMatched
	}
	if email := senderEmail(s); email != "" {
		if id, ok := m.byEmail[strings.ToLower(email)]; ok {
			s.RefID = id
			return mapMatched
		}
	}
	if s.ID == "" && senderEmail(s) == "" {
		return mapNone // Validate names the missing sender.id
	}
	if m.botID != "" {
		s.RefID = m.botID
		return mapBot
	}
	return mapUnmatched
}

func senderEmail(s *wire.Participant) string {
	if s.Profile == nil {
		return ""
	}
	return s.Profile.Email
}

// UnmatchedAgent is an agent of the source whose outgoing messages match no
// Kommo user: rejected, or sent as the bot when a bot id is set.
type UnmatchedAgent struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email,omitempty"`
	Messages  int64  `json:"messages"`
	FirstLine int64  `json:"first_line"`
	AsBot     bool   `json:"as_bot"`
}

// maxUnmatchedAgents bounds the list a reader keeps: a source whose incoming
// messages wrongly carry a receiver would otherwise list every client.
const maxUnmatchedAgents = 10000

// mapUser applies the reader's UserMap to r.p before validation. It returns
// a *LineError (position left to reject) for an agent that matches nobody.
func (r *Reader) mapUser(line int64) *LineError {
	res := r.users.resolve(&r.p)
	if res != mapUnmatched && res != mapBot {
		return nil
	}
	s := r.p.Sender
	email := senderEmail(s)
	// Keyed by id (no allocation on the bot path); by email only without one.
	key := s.ID
	if key == "" {
		key = "\x00" + strings.ToLower(email)
	}
	a, ok := r.unmatched[key]
	if !ok && len(r.unmatched) < maxUnmatchedAgents {
		if r.unmatched == nil {
			r.unmatched = map[string]*UnmatchedAgent{}
		}
		a = &UnmatchedAgent{ID: s.ID, Name: s.Name, Email: email, AsBot: res == mapBot}
		r.unmatched[key] = a
	}
	if a != nil {
		a.Messages++
		if a.FirstLine == 0 {
			a.FirstLine = line
		}
	}
	if res == mapBot {
		return nil
	}
	who := s.Name
	if email != "" {
		who = email
	}
	if name, ok := r.users.noAmojo[strings.ToLower(email)]; ok && email != "" {
		return fieldErr("sender.ref_id", "agent %q (%s) %w: Kommo user %q has no amojo_id; add them to --users or use --bot-id",
			s.ID, who, ErrUnmatchedAgent, name)
	}
	return fieldErr("sender.ref_id", "agent %q (%s) %w: add them to --users or use --bot-id", s.ID, who, ErrUnmatchedAgent)
}

// UnmatchedAgents lists the agents whose outgoing messages matched no Kommo
// user so far, most messages first (at most 10,000 agents). Empty without
// Spec.Users.
func (r *Reader) UnmatchedAgents() []UnmatchedAgent {
	out := make([]UnmatchedAgent, 0, len(r.unmatched))
	for _, a := range r.unmatched {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Messages != out[j].Messages {
			return out[i].Messages > out[j].Messages
		}
		return out[i].FirstLine < out[j].FirstLine
	})
	return out
}
