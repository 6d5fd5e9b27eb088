package sim

import (
	"encoding/json"
	"maps"
	"time"
)

// Stats are the simulator's counters, as GET /_sim/stats returns them.
type Stats struct {
	// Requests counts API requests (everything but /_sim/), by endpoint
	// (new_message, create_chat, history, connect, unknown) and by the status
	// sent ("200", "429", ..., "dropped" for a dropped connection, "none" when
	// the client went away before an answer).
	Requests   int64            `json:"requests"`
	ByEndpoint map[string]int64 `json:"by_endpoint"`
	ByStatus   map[string]int64 `json:"by_status"`
	// Accepted counts recorded messages, duplicates included.
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	// IdempotentRepeats counts repeated msgids answered from the first
	// result without recording (only with Options.IdempotentMsgID).
	IdempotentRepeats int64 `json:"idempotent_repeats"`
	ChatsCreated      int64 `json:"chats_created"`
	// Lost counts messages answered 200 and not stored (the accept-lose fault).
	Lost              int64 `json:"lost"`
	RejectedSignature int64 `json:"rejected_signature"`
	RejectedInvalid   int64 `json:"rejected_invalid"`
	RejectedScope     int64 `json:"rejected_scope"`
	// RateLimited counts real rate-limit 429s (not injected ones).
	RateLimited int64 `json:"rate_limited"`
	// BlockedRequests counts requests answered with the block page.
	BlockedRequests int64            `json:"blocked_requests"`
	Faults          map[string]int64 `json:"faults"`
	FaultSpec       string           `json:"fault_spec"`
	Blocked         bool             `json:"blocked"`
	// MaxRequestsInAny1s is the most API requests that reached the rate
	// limiter within any sliding one-second window, refused ones included.
	MaxRequestsInAny1s int `json:"max_requests_in_any_1s"`

	// The main API (/api/v4/), counted apart: CRMRequests by endpoint
	// (account, users, contacts_search, contacts_create, contacts_link,
	// contacts_links, unknown) and status; CRMRateLimited its 429s.
	CRMRequests           int64            `json:"crm_requests"`
	CRMByEndpoint         map[string]int64 `json:"crm_by_endpoint"`
	CRMByStatus           map[string]int64 `json:"crm_by_status"`
	CRMRateLimited        int64            `json:"crm_rate_limited"`
	CRMMaxRequestsInAny1s int              `json:"crm_max_requests_in_any_1s"`
	// ContactsCreated counts contacts made by POST /api/v4/contacts;
	// LinksCreated the links made or changed by POST /api/v4/contacts/chats.
	ContactsCreated int64 `json:"contacts_created"`
	LinksCreated    int64 `json:"links_created"`
	// LinksChanged counts links that moved a chat to another contact,
	// LinksRepeated the POSTs that named the contact a chat was linked to
	// already (nothing changed), LinksAfterMessages the links made for a
	// chat that had messages (Kommo's recipe links a chat before its first
	// message).
	LinksChanged       int64 `json:"links_changed"`
	LinksRepeated      int64 `json:"links_repeated"`
	LinksAfterMessages int64 `json:"links_after_messages"`
	// CRMFaults counts the main API's injected faults (Options.CRMFaults)
	// by kind; CRMFirstRateLimited and CRMLastRateLimited are the times of
	// its first and last 429.
	CRMFaults           map[string]int64 `json:"crm_faults"`
	CRMFirstRateLimited time.Time        `json:"crm_first_rate_limited,omitzero"`
	CRMLastRateLimited  time.Time        `json:"crm_last_rate_limited,omitzero"`
	// IncomingLeads counts the chats that received a loud (silent: false)
	// message while not linked to a contact: each is an incoming (unsorted)
	// lead the real Kommo would create, once per chat.
	IncomingLeads int64 `json:"incoming_leads"`

	// Media downloads (Options.MediaFetch): files fetched whole with the
	// size message.file_size says, and their bytes; failures by reason
	// (forbidden, not_found, size_mismatch, timeout, not_http, ...); URLs
	// under a reserved example domain, not fetched; downloads not ended yet.
	MediaFetched int64            `json:"media_fetched"`
	MediaBytes   int64            `json:"media_bytes"`
	MediaFailed  map[string]int64 `json:"media_failed"`
	MediaSkipped int64            `json:"media_skipped"`
	MediaPending int64            `json:"media_pending"`
}

func newStats() Stats {
	return Stats{ByEndpoint: map[string]int64{}, ByStatus: map[string]int64{}, Faults: map[string]int64{}, MediaFailed: map[string]int64{},
		CRMByEndpoint: map[string]int64{}, CRMByStatus: map[string]int64{}, CRMFaults: map[string]int64{}}
}

func (s Stats) clone() Stats {
	s.ByEndpoint = copyMap(s.ByEndpoint)
	s.ByStatus = copyMap(s.ByStatus)
	s.Faults = copyMap(s.Faults)
	s.CRMByEndpoint = copyMap(s.CRMByEndpoint)
	s.CRMByStatus = copyMap(s.CRMByStatus)
	s.CRMFaults = copyMap(s.CRMFaults)
	s.MediaFailed = copyMap(s.MediaFailed)
	return s
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	maps.Copy(out, m)
	return out
}

// LedgerEntry is one accepted message, as written to the JSONL ledger.
type LedgerEntry struct {
	Seq        int64     `json:"seq"`
	ReceivedAt time.Time `json:"received_at"` // RFC 3339 with nanoseconds
	// ArrivedAt is when the request reached the simulator, before its body
	// was read and before any lock: what the rate limit counts. ReceivedAt
	// (when it was stored) can be later by a lock's wait.
	ArrivedAt      time.Time `json:"arrived_at"`
	ScopeID        string    `json:"scope_id"`
	ConversationID string    `json:"conversation_id"`
	ChatID         string    `json:"chat_id"`
	MsgID          string    `json:"msgid"`
	KommoMsgID     string    `json:"kommo_msgid"`
	Silent         bool      `json:"silent"`
	MsecTimestamp  int64     `json:"msec_timestamp"`
	// Duplicate is true when the msgid had been accepted before.
	Duplicate bool `json:"duplicate"`
	// Payload is the payload object exactly as the client sent it.
	Payload json.RawMessage `json:"payload"`
	// Media is the result of downloading the message's media
	// (Options.MediaFetch), once it has ended: in GET /_sim/ledger, not in
	// the ledger file, which is written when the message is accepted (the
	// media ledger has the results).
	Media *MediaResult `json:"media,omitempty"`
}
