package contacts

import (
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// Client is a conversation's client as the export gives them: the sender of
// an incoming message, the receiver of an outgoing one, with the phone and
// e-mail of their profile.
type Client struct {
	ID    string
	Name  string
	Phone string
	Email string
}

// ClientOf returns the client of a message, and false for a message that
// names none.
func ClientOf(p *wire.Payload) (Client, bool) {
	u := p.Sender
	if p.Receiver != nil {
		u = p.Receiver
	}
	if u == nil {
		return Client{}, false
	}
	c := Client{ID: u.ID, Name: u.Name}
	if u.Profile != nil {
		c.Phone, c.Email = strings.TrimSpace(u.Profile.Phone), strings.TrimSpace(u.Profile.Email)
	}
	return c, true
}

// Conversation is one conversation of an export, with its client.
type Conversation struct {
	ID       string
	Client   Client
	Messages int
}

// Collector gathers the conversations of a stream of messages and each
// one's client: the first message's client, with the first phone and the
// first e-mail any of the client's messages in it carries (exports often
// give the profile on some messages only).
type Collector struct {
	order []string
	convs map[string]*Conversation
}

// NewCollector returns an empty Collector.
func NewCollector() *Collector { return &Collector{convs: map[string]*Conversation{}} }

// Add takes one message.
func (c *Collector) Add(p *wire.Payload) {
	conv := c.convs[p.ConversationID]
	if conv == nil {
		conv = &Conversation{ID: p.ConversationID}
		c.convs[p.ConversationID] = conv
		c.order = append(c.order, p.ConversationID)
	}
	conv.Messages++
	cl, ok := ClientOf(p)
	if !ok {
		return
	}
	if conv.Client.ID == "" {
		conv.Client.ID, conv.Client.Name = cl.ID, cl.Name
	}
	if cl.ID != conv.Client.ID {
		return
	}
	if conv.Client.Name == "" {
		conv.Client.Name = cl.Name
	}
	if conv.Client.Phone == "" {
		conv.Client.Phone = cl.Phone
	}
	if conv.Client.Email == "" {
		conv.Client.Email = cl.Email
	}
}

// Conversations returns the conversations in the order they first appeared.
func (c *Collector) Conversations() []Conversation {
	out := make([]Conversation, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, *c.convs[id])
	}
	return out
}
