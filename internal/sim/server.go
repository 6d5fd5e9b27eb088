package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/kommo-import/kommo-import/signer"
)

// Defaults for the zero values of Options.
const (
	DefaultRate            = 7.0
	DefaultRetryAfter      = 300 * time.Second // what the real API sends
	DefaultFaultRetryAfter = time.Second
	DefaultHang            = 60 * time.Second
	// MaxBody caps a request body; amojo messages are small.
	MaxBody = 1 << 20
)

// The orders of Options.HistoryOrder.
const (
	HistoryOrderTime    = "time"
	HistoryOrderArrival = "arrival"
)

// Options configure a Server. ScopeID and Secret are required; zero values
// elsewhere mean the documented default.
type Options struct {
	// ScopeID is the one scope the simulator serves; any other gives 404 ORIGIN_NOT_REGISTERED.
	ScopeID string
	// ChannelID is the channel accepted by connect. Empty means the part of
	// ScopeID before "_" (scope ids look like {channel_id}_{account_id}).
	ChannelID string
	// Secret is the channel secret every request must be signed with.
	Secret signer.Secret

	// Rate is the token-bucket rate in requests per second over all API
	// requests; 0 (or negative) means no limit. The real API's is DefaultRate.
	Rate float64
	// Burst is the bucket size; 0 means ceil(Rate).
	Burst int
	// RetryAfter is the retry_after of a rate-limit 429 (whole seconds, rounded up).
	RetryAfter time.Duration
	// BlockAfter > 0 emulates the account block: after that many rate-limit
	// 429s every request gets a 403 HTML page until Unblock. Injected 429s
	// (Faults) do not count: they stand for the server's trouble, not the client's excess.
	BlockAfter int

	// Faults are injected per request, drawn from a generator seeded with Seed.
	Faults Faults
	Seed   int64
	// FaultRetryAfter is the retry_after of an injected (spurious) 429.
	FaultRetryAfter time.Duration
	// Latency is added to every new_message, create-chat and history request,
	// plus a uniform random part in [0, Jitter).
	Latency, Jitter time.Duration
	// HistoryDelay is how long an accepted message stays invisible to history
	// (the real API processes messages asynchronously).
	HistoryDelay time.Duration
	// Hang is how long a "hang" fault holds a request (or until the client gives up).
	Hang time.Duration
	// HistoryOrder is the order history lists a chat's messages in, newest
	// first: HistoryOrderTime ("" too) by their msec_timestamp, or
	// HistoryOrderArrival by when they arrived, so that a message sent after
	// newer ones of its chat shows after them.
	HistoryOrder string

	// IdempotentMsgID makes a repeated msgid return the first answer without
	// recording anything. By default a repeated msgid creates a duplicate
	// message, the worst case the undocumented real behaviour allows.
	IdempotentMsgID bool

	// Ledger, if set, receives one JSON line per accepted message, one Write
	// per line (flushed if it has Flush).
	Ledger io.Writer
	// CRMToken is the account's admin token the main API (/api/v4/) takes
	// as "Authorization: Bearer"; any other token gets 401. Empty: the main
	// API refuses every request.
	CRMToken signer.Secret
	// CRMTokenNoLink plays a token of another integration than the chat
	// channel's own: linking chats (and listing links) gets 403.
	CRMTokenNoLink bool
	// Contacts seed the account (LoadContacts reads a JSONL file of them).
	Contacts []map[string]any
	// CRMUsers are the account's users (GET /api/v4/users).
	CRMUsers []CRMUser
	// CRMRate limits the main API's requests per second, apart from the
	// Chats API's; 0 means no limit. CRMBurst is its bucket (0: ceil(CRMRate)).
	CRMRate  float64
	CRMBurst int
	// CRMRetryAfter is the retry_after of a main-API 429 (default DefaultRetryAfter).
	CRMRetryAfter time.Duration
	// CRMFaults are injected into the contact and link requests of the
	// main API (after the rate limit and the token; not into the account
	// and users calls): 500 and 503 before the request is carried out,
	// accept-500 and accept-drop after (a contact created, a chat linked,
	// and the answer lost). Other kinds are ignored. Drawn from the same
	// generator as Faults.
	CRMFaults Faults

	// MediaFetch, if set, downloads the media of every accepted message as
	// Kommo does (media.go); nil leaves media URLs alone.
	MediaFetch *MediaFetch
	// Now is the simulator's clock; nil means time.Now.
	Now func() time.Time
	// Logger gets one line per refusal and fault (debug: per request); nil discards.
	Logger *slog.Logger
}

// Server is the simulator. It is an http.Handler and safe for concurrent use.
type Server struct {
	opts  Options
	now   func() time.Time
	log   *slog.Logger
	burst int

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand // faults and jitter
	idRNG    *rand.Rand // uuids, separate so ids never shift the fault sequence
	bucket   *bucket
	win      window
	limited  int // rate-limit 429s so far, for the block emulation
	blocked  bool
	chats    map[string]*chat // by conversation_id
	chatByID map[string]*chat // by Kommo chat id
	users    map[string]*user // by the client's participant id
	byMsgID  map[string]*stored
	ledger   []LedgerEntry

	// the main API (crm.go)
	crmBucket     *bucket
	crmWin        window
	contacts      map[int64]*storedContact
	contactOrder  []int64
	nextContactID int64
	linkSeq       int64
	seq           int64
	stats         Stats
	fetch         *fetcher // nil: media are not fetched
}

type chat struct {
	id             string
	conversationID string
	messages       []*stored
	link           *link // its contact, once linked
	lead           bool  // a loud message arrived while it had no link: Kommo made an incoming lead
}

type user struct {
	id, clientID, name, avatar, phone, email string
}

// stored is one accepted message as history shows it.
type stored struct {
	seq        int64
	kommoID    string
	msg        *newMessage
	senderID   string
	receiverID string
	visibleAt  time.Time
	response   newMessageResult
}

// New checks opts and returns a ready Server.
func New(opts Options) (*Server, error) {
	if opts.ScopeID == "" {
		return nil, errors.New("sim: ScopeID is required")
	}
	if strings.Contains(opts.ScopeID, "/") {
		return nil, fmt.Errorf("sim: ScopeID %q contains '/'", opts.ScopeID)
	}
	if opts.Secret == "" {
		return nil, errors.New("sim: Secret is required")
	}
	if opts.ChannelID == "" {
		opts.ChannelID, _, _ = strings.Cut(opts.ScopeID, "_")
	}
	if opts.Rate < 0 {
		opts.Rate = 0
	}
	if opts.Burst < 0 {
		return nil, fmt.Errorf("sim: negative Burst %d", opts.Burst)
	}
	if opts.Burst == 0 {
		opts.Burst = max(1, int(math.Ceil(opts.Rate)))
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = DefaultRetryAfter
	}
	if opts.FaultRetryAfter <= 0 {
		opts.FaultRetryAfter = DefaultFaultRetryAfter
	}
	if opts.Hang <= 0 {
		opts.Hang = DefaultHang
	}
	switch opts.HistoryOrder {
	case "", HistoryOrderTime, HistoryOrderArrival:
	default:
		return nil, fmt.Errorf("sim: HistoryOrder %q: want %s or %s", opts.HistoryOrder, HistoryOrderTime, HistoryOrderArrival)
	}
	if opts.Latency < 0 || opts.Jitter < 0 || opts.HistoryDelay < 0 {
		return nil, errors.New("sim: negative Latency, Jitter or HistoryDelay")
	}
	if opts.CRMRate < 0 {
		opts.CRMRate = 0
	}
	if opts.CRMBurst < 0 {
		return nil, fmt.Errorf("sim: negative CRMBurst %d", opts.CRMBurst)
	}
	if opts.CRMBurst == 0 {
		opts.CRMBurst = max(1, int(math.Ceil(opts.CRMRate)))
	}
	if opts.CRMRetryAfter <= 0 {
		opts.CRMRetryAfter = DefaultRetryAfter
	}
	if opts.BlockAfter < 0 {
		return nil, fmt.Errorf("sim: negative BlockAfter %d", opts.BlockAfter)
	}
	faults, err := ParseFaults(opts.Faults.String())
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	s := &Server{
		opts:     opts,
		now:      opts.Now,
		log:      opts.Logger,
		burst:    opts.Burst,
		faults:   faults,
		rng:      newRand(opts.Seed, 1),
		idRNG:    newRand(opts.Seed, 2),
		bucket:   newBucket(opts.Rate, opts.Burst),
		chats:    map[string]*chat{},
		chatByID: map[string]*chat{},
		users:    map[string]*user{},
		byMsgID:  map[string]*stored{},

		crmBucket: newBucket(opts.CRMRate, opts.CRMBurst),
	}
	if err := s.seedCRM(opts.Contacts); err != nil {
		return nil, err
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.stats = newStats()
	if opts.MediaFetch != nil {
		s.fetch = newFetcher(*opts.MediaFetch)
	}
	return s, nil
}

func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// SetFaults replaces the fault probabilities at run time. A non-nil seed also
// restarts the fault generator, so a test can replay a sequence.
func (s *Server) SetFaults(f Faults, seed *int64) error {
	f, err := ParseFaults(f.String())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	if seed != nil {
		s.rng = newRand(*seed, 1)
	}
	return nil
}

// Unblock lifts the emulated account block and forgets the 429s counted towards it.
func (s *Server) Unblock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked = false
	s.limited = 0
}

// Ledger returns a copy of the accepted messages in acceptance order.
func (s *Server) Ledger() []LedgerEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LedgerEntry(nil), s.ledger...)
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats.clone()
	st.Blocked = s.blocked
	st.MaxRequestsInAny1s = s.win.max
	st.CRMMaxRequestsInAny1s = s.crmWin.max
	st.Faults = copyMap(st.Faults)
	st.FaultSpec = s.faults.String()
	return st
}

// ChatID returns the Kommo chat id for a conversation_id, if the chat exists.
func (s *Server) ChatID(conversationID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.chats[conversationID]
	if !ok {
		return "", false
	}
	return c.id, true
}

// uuid returns a random (seeded) version-4 UUID. Callers hold s.mu.
func (s *Server) uuid() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := s.idRNG.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
