package importer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// A later export may hold messages older than what their chat already
// shows (a backfill): Kommo cannot put a message before those it shows, so
// they would appear after the chat's newer ones. Planning counts them,
// over everything the scope has sent, says so before anything is sent,
// and with OlderSkip gives them up (state skipped, with the reason).

// planOlder finds the run's older messages in the planning transaction q
// (and with OlderSkip gives them up).
func (im *Importer) planOlder(ctx context.Context, q *store.Queries) (store.Older, error) {
	return q.MarkOlder(ctx, im.cfg.Run, im.cfg.ScopeID, im.cfg.Older == OlderSkip)
}

// sayOlder says, once planning has committed, what it found.
func (im *Importer) sayOlder(o store.Older) {
	if o.Messages == 0 {
		return
	}
	chats := make([]string, len(o.Chats))
	for i, c := range o.Chats {
		chats[i] = fmt.Sprintf("%s (%d)", c.ConversationID, c.Messages)
	}
	if o.Conversations > int64(len(chats)) {
		chats = append(chats, "...")
	}
	what := "sent after the chats' newer messages, where Kommo shows them (--older skip gives them up)"
	if im.cfg.Older == OlderSkip {
		what = "given up (--older skip): report lists them"
	}
	im.log.Warn(OlderText(o.Messages, o.Conversations)+": "+what, "run", im.cfg.Run, "chats", strings.Join(chats, ", "),
		"newest_shown", time.UnixMilli(o.Chats[0].Shown).UTC().Format(time.RFC3339))
}

// OlderText says how many messages in how many chats are older than what
// those chats already show: "412 messages in 37 chats are older than what
// those chats already show".
func OlderText(messages, chats int64) string {
	switch {
	case messages == 1:
		return "1 message in 1 chat is older than what that chat already shows"
	case chats == 1:
		return thousands(messages) + " messages in 1 chat are older than what that chat already shows"
	}
	return thousands(messages) + " messages in " + thousands(chats) + " chats are older than what those chats already show"
}

// thousands is n with thousands separators: 11,720.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
