// Package contactgen generates, for tests, a Kommo account full of contacts
// that look alike (the same digits in another field, "+7" and "8" prefixes,
// spaces and dashes, upper case, an e-mail that contains another, the same
// national number in another country) and an export's conversations whose
// clients match them, with the outcome strict matching must reach for each.
package contactgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
)

// Region is the region the generated phones without a country code are in.
const Region = "RU"

// Outcomes, as package contacts names them.
const (
	Link          = "link"
	Unlinked      = "unlinked"
	Ambiguous     = "ambiguous"
	NoContactInfo = "no_contact_info"
)

// Conversation is one generated conversation with what matching must find.
type Conversation struct {
	ID          string
	ClientID    string
	ClientName  string
	Phone       string // as the export writes it
	Email       string
	Messages    int
	Want        string  // the outcome
	WantContact int64   // Link: the contact
	WantCands   []int64 // Ambiguous: the candidates, by id
	WantMethod  string  // Link: phone, email or phone+email
}

// Account is a generated account and export.
type Account struct {
	Contacts      []map[string]any
	Conversations []Conversation
}

// Generate makes an account of about contacts contacts and conversations
// conversations (some clients have several), from seed.
func Generate(seed uint64, contacts, conversations int) *Account {
	g := &gen{rng: rand.New(rand.NewPCG(seed, 99)), used: map[string]bool{}}
	a := &Account{}
	// Nine in ten conversations have a client of their own; the rest go to
	// every 25th client, so some clients have several chats.
	clients := max(conversations*9/10, 1)
	chats := make([]int, clients)
	for i := range chats {
		chats[i] = 1
	}
	for extra, i := conversations-clients, 0; extra > 0; extra-- {
		chats[i]++
		if i += 25; i >= clients {
			i = 0
		}
	}
	for i, n := range chats {
		for k := range n {
			c := g.client(i, a) // the client's contacts are added once
			c.ID = fmt.Sprintf("conv-%04d-%d", i, k)
			c.Messages = 1 + g.rng.IntN(4)
			a.Conversations = append(a.Conversations, c)
		}
	}
	for len(a.Contacts) < contacts {
		g.filler(a)
	}
	return a
}

type gen struct {
	rng     *rand.Rand
	used    map[string]bool // national numbers in use
	nextID  int64
	clients map[int]Conversation
}

func (g *gen) id() int64 { g.nextID++; return g.nextID }

// nsn is a fresh 10-digit Russian mobile national number.
func (g *gen) nsn() string {
	for {
		n := fmt.Sprintf("9%02d%07d", g.rng.IntN(100), g.rng.IntN(10_000_000))
		if !g.used[n] {
			g.used[n] = true
			return n
		}
	}
}

// formats writes one national number the ways people do.
func formats(n string) []string {
	return []string{
		"+7 " + n[:3] + " " + n[3:6] + "-" + n[6:8] + "-" + n[8:],
		"8 (" + n[:3] + ") " + n[3:6] + " " + n[6:8] + " " + n[8:],
		"7" + n,
		"+7" + n,
		"8-" + n[:3] + "-" + n[3:6] + "-" + n[6:8] + "-" + n[8:],
	}
}

func contact(id int64, name string, phones, emails []string, extra ...map[string]any) map[string]any {
	var fields []any
	if len(phones) > 0 {
		var vs []any
		for _, p := range phones {
			vs = append(vs, map[string]any{"value": p, "enum_code": "WORK"})
		}
		fields = append(fields, map[string]any{"field_id": 101, "field_code": "PHONE", "field_name": "Phone", "field_type": "multitext", "values": vs})
	}
	if len(emails) > 0 {
		var vs []any
		for _, e := range emails {
			vs = append(vs, map[string]any{"value": e, "enum_code": "WORK"})
		}
		fields = append(fields, map[string]any{"field_id": 102, "field_code": "EMAIL", "field_name": "Email", "field_type": "multitext", "values": vs})
	}
	for _, x := range extra {
		fields = append(fields, x)
	}
	c := map[string]any{"id": id, "name": name, "custom_fields_values": fields}
	if len(fields) == 0 {
		c["custom_fields_values"] = nil
	}
	return c
}

func note(text string) map[string]any {
	return map[string]any{"field_id": 200, "field_name": "Note", "field_type": "textarea", "values": []any{map[string]any{"value": text}}}
}

// client returns client i's conversation (its phone, e-mail and wanted
// outcome), adding the client's contacts and look-alikes to the account the
// first time.
func (g *gen) client(i int, a *Account) Conversation {
	if g.clients == nil {
		g.clients = map[int]Conversation{}
	}
	if c, ok := g.clients[i]; ok {
		return c
	}
	n := g.nsn()
	f := formats(n)
	email := fmt.Sprintf("client%d@mail%d.test", i, i%7)
	c := Conversation{ClientID: fmt.Sprintf("client-%04d", i), ClientName: fmt.Sprintf("Client %d", i)}
	add := func(m map[string]any) int64 { a.Contacts = append(a.Contacts, m); return m["id"].(int64) }
	// Look-alikes every client has: its digits in another contact's note,
	// and an address that contains its own.
	add(contact(g.id(), fmt.Sprintf("Order %s", n), nil, nil, note("called from "+n+" about an order")))
	add(contact(g.id(), "Look-alike "+c.ClientName, []string{"+7 " + g.nsn()}, []string{"x" + email}))
	switch i % 10 {
	case 0, 1, 2, 3: // one contact with the phone, written some way; the e-mail in upper case or absent
		c.Phone, c.Email = f[3], email
		emails := []string{}
		c.WantMethod = "phone"
		if i%2 == 0 {
			emails = []string{fmt.Sprintf("CLIENT%d@MAIL%d.TEST", i, i%7)}
			c.WantMethod = "phone+email"
		}
		c.Want, c.WantContact = Link, add(contact(g.id(), c.ClientName, []string{f[i%len(f)]}, emails))
	case 4: // matched by e-mail only; the phone on the contact is another one
		c.Phone, c.Email = f[3], email
		c.Want, c.WantMethod = Link, "email"
		c.WantContact = add(contact(g.id(), c.ClientName, []string{"+7 " + g.nsn()}, []string{"  Client" + fmt.Sprint(i) + "@Mail" + fmt.Sprint(i%7) + ".test "}))
	case 5: // two contacts share the phone (a duplicate in the CRM): ambiguous
		c.Phone, c.Email = f[0], ""
		c.Want = Ambiguous
		c.WantCands = []int64{add(contact(g.id(), c.ClientName, []string{f[1]}, nil)), add(contact(g.id(), c.ClientName+" (old)", []string{f[2], "+7 " + g.nsn()}, nil))}
	case 6: // nobody: only look-alikes (the same national number in the US, a longer number)
		c.Phone, c.Email = f[3], email
		c.Want = Unlinked
		add(contact(g.id(), "US "+c.ClientName, []string{"+1 (" + n[:3] + ") " + n[3:6] + "-" + n[6:]}, nil))
		add(contact(g.id(), "Long "+c.ClientName, []string{"+49 30 " + n + "1"}, []string{email + ".org"}))
	case 7: // no phone and no e-mail
		c.Want = NoContactInfo
	case 8: // the export writes the phone without a country code
		c.Phone, c.Email = n, ""
		c.Want, c.WantMethod = Link, "phone"
		c.WantContact = add(contact(g.id(), c.ClientName, []string{f[1]}, nil))
	case 9: // e-mail only, and two contacts have it in different case: ambiguous
		c.Phone, c.Email = "", fmt.Sprintf("Client%d@Mail%d.test", i, i%7)
		c.Want = Ambiguous
		c.WantCands = []int64{add(contact(g.id(), c.ClientName, nil, []string{email})), add(contact(g.id(), c.ClientName+" 2", nil, []string{fmt.Sprintf("CLIENT%d@MAIL%d.TEST", i, i%7)}))}
	}
	slices.Sort(c.WantCands)
	g.clients[i] = c
	return c
}

// filler adds a contact that matches no client.
func (g *gen) filler(a *Account) {
	n := g.nsn()
	id := g.id()
	a.Contacts = append(a.Contacts, contact(id, fmt.Sprintf("Filler %d", id), []string{formats(n)[g.rng.IntN(5)]}, []string{fmt.Sprintf("filler%d@corp%d.test", id, id%13)}))
}

// WriteContacts writes the account as kommo-sim's --contacts JSONL.
func (a *Account) WriteContacts(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, c := range a.Contacts {
		if err := enc.Encode(c); err != nil {
			return err
		}
	}
	return nil
}

// WriteMessages writes the conversations as a JSONL export: each
// conversation's messages, incoming from the client (the profile only on
// the first) and one outgoing reply from the bot.
func (a *Account) WriteMessages(w io.Writer, botID string) error {
	enc := json.NewEncoder(w)
	ts := int64(1_700_000_000_000)
	for _, c := range a.Conversations {
		for k := range c.Messages {
			ts += 1000
			client := map[string]any{"id": c.ClientID, "name": c.ClientName}
			if k == 0 && (c.Phone != "" || c.Email != "") {
				prof := map[string]any{}
				if c.Phone != "" {
					prof["phone"] = c.Phone
				}
				if c.Email != "" {
					prof["email"] = c.Email
				}
				client["profile"] = prof
			}
			p := map[string]any{"msgid": fmt.Sprintf("%s-m%d", c.ID, k), "conversation_id": c.ID, "msec_timestamp": ts,
				"sender": client, "message": map[string]any{"type": "text", "text": fmt.Sprintf("message %d", k)}}
			if k == c.Messages-1 && c.Messages > 1 {
				p["sender"] = map[string]any{"id": "bot", "ref_id": botID, "name": "Bot"}
				p["receiver"] = client
			}
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
	}
	return nil
}
