package importer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kommo-import/kommo-import/wire"
)

// A quoted reply (reply_to) or a forward names its message by Kommo's id or
// by our msgid. Before a message is sent, each reference by msgid is
// settled against what the scope holds:
//   - a message we sent: named by Kommo's id, so jump-to-message works;
//   - a message we hold but have not sent (a forward from a chat still to
//     come, one that failed): embedded by msgid with the fields the API
//     needs (type, text, timestamps, sender, file details), from its row;
//   - a message the export does not contain: the quote is dropped and the
//     message sent without it (counted in the run's quotes_dropped), rather
//     than refused by the API.

type quoted struct {
	state   State
	kommoID string
	payload []byte
}

// resolveQuotes settles p's references; it reports whether one was dropped.
func (im *Importer) resolveQuotes(ctx context.Context, p *wire.Payload) (dropped bool, err error) {
	var ids []string
	if p.ReplyTo != nil && p.ReplyTo.Message.ID == "" && p.ReplyTo.Message.MsgID != "" {
		ids = append(ids, p.ReplyTo.Message.MsgID)
	}
	if p.Forwards != nil {
		for _, m := range p.Forwards.Messages {
			if m.ID == "" && m.MsgID != "" {
				ids = append(ids, m.MsgID)
			}
		}
	}
	if len(ids) == 0 {
		return false, nil
	}
	found := map[string]quoted{}
	err = im.withDB(ctx, "quoted messages", func(ctx context.Context) error {
		rows, err := im.q.QuotedMessages(ctx, im.cfg.ScopeID, ids)
		for _, r := range rows {
			found[r.MsgID] = quoted{r.State, r.KommoID, r.Payload}
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("quoted messages: %w", err)
	}
	settle := func(e *wire.EmbeddedMessage) (bool, error) {
		if e.ID != "" || e.MsgID == "" {
			return true, nil
		}
		q, ok := found[e.MsgID]
		switch {
		case !ok:
			return false, nil
		case q.state == StateSent && q.kommoID != "":
			*e = wire.EmbeddedMessage{ID: q.kommoID}
			return true, nil
		}
		var src wire.Payload
		if err := json.Unmarshal(q.payload, &src); err != nil {
			return false, fmt.Errorf("quoted message %s: stored payload: %w", e.MsgID, err)
		}
		*e = embed(&src)
		return true, nil
	}
	if p.ReplyTo != nil {
		keep, err := settle(&p.ReplyTo.Message)
		if err != nil {
			return false, err
		}
		if !keep {
			p.ReplyTo, dropped = nil, true
		}
	}
	if p.Forwards != nil {
		kept := p.Forwards.Messages[:0]
		for i := range p.Forwards.Messages {
			keep, err := settle(&p.Forwards.Messages[i])
			if err != nil {
				return false, err
			}
			if keep {
				kept = append(kept, p.Forwards.Messages[i])
			} else {
				dropped = true
			}
		}
		if len(kept) == 0 {
			p.Forwards = nil
		} else {
			p.Forwards.Messages = kept
		}
	}
	return dropped, nil
}

// embed is a message as a quote names it when Kommo has no id for it.
func embed(p *wire.Payload) wire.EmbeddedMessage {
	e := wire.EmbeddedMessage{MsgID: p.MsgID, Timestamp: p.Timestamp, MsecTimestamp: p.MsecTimestamp}
	if m := p.Message; m != nil {
		e.Type, e.Text = m.Type, m.Text
		e.FileName, e.FileSize, e.MediaDuration = m.FileName, m.FileSize, m.MediaDuration
		e.Location, e.Contact = m.Location, m.Contact
	}
	if s := p.Sender; s != nil {
		e.Sender = &wire.EmbeddedSender{ID: s.ID, RefID: s.RefID, Name: s.Name}
	}
	return e
}
