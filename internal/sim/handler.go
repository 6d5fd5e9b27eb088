package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/signer"
)

// Endpoint names used in Stats.ByEndpoint.
const (
	EndpointNewMessage = "new_message"
	EndpointCreateChat = "create_chat"
	EndpointHistory    = "history"
	EndpointConnect    = "connect"
	EndpointUnknown    = "unknown"
)

const apiPrefix = "/v2/origin/custom/"

// MaxHistoryLimit is the largest history page the API serves.
const MaxHistoryLimit = 50

// blockPage imitates the nginx page blocked accounts have been seen to get:
// HTML, not JSON, which is how a client tells a block from a signature error.
const blockPage = `<html>
<head><title>403 Forbidden</title></head>
<body>
<center><h1>403 Forbidden</h1></center>
<hr><center>nginx</center>
</body>
</html>
`

type route struct {
	endpoint string
	scope    string // scope id, or channel id for connect
	chatID   string
	method   string
}

func parseRoute(path string) route {
	rest, ok := strings.CutPrefix(path, apiPrefix)
	if !ok {
		return route{endpoint: EndpointUnknown}
	}
	p := strings.Split(rest, "/")
	switch {
	case len(p) == 1 && p[0] != "":
		return route{endpoint: EndpointNewMessage, scope: p[0], method: http.MethodPost}
	case len(p) == 2 && p[0] != "" && p[1] == "chats":
		return route{endpoint: EndpointCreateChat, scope: p[0], method: http.MethodPost}
	case len(p) == 2 && p[0] != "" && p[1] == "connect":
		return route{endpoint: EndpointConnect, scope: p[0], method: http.MethodPost}
	case len(p) == 4 && p[0] != "" && p[1] == "chats" && p[2] != "" && p[3] == "history":
		return route{endpoint: EndpointHistory, scope: p[0], chatID: p[2], method: http.MethodGet}
	}
	return route{endpoint: EndpointUnknown}
}

// recorder remembers the status a handler sent, for the stats.
type recorder struct {
	http.ResponseWriter
	status  int
	dropped bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (accept-drop).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) label() string {
	switch {
	case r.dropped:
		return "dropped"
	case r.status == 0:
		return "none"
	}
	return strconv.Itoa(r.status)
}

// ServeHTTP serves the Chats API under /v2/origin/custom/ and the
// simulator's own control endpoints under /_sim/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The rate limit and the window count a request when it arrived, not
	// when it gets the lock (another request may hold it writing the
	// ledger: the arrival would look later by that much, and the second
	// after it more crowded than it was).
	arrived := s.now()
	// Every answer carries the simulator's clock, so a client can tell clock
	// skew from a bad signature.
	w.Header().Set("Date", arrived.UTC().Format(http.TimeFormat))
	if strings.HasPrefix(r.URL.Path, "/_sim/") {
		s.serveControl(w, r)
		return
	}
	if strings.HasPrefix(r.URL.Path, crmPrefix) {
		s.serveCRM(w, r, arrived)
		return
	}
	rec := &recorder{ResponseWriter: w}
	rt := parseRoute(r.URL.Path)
	s.serveAPI(rec, r, rt, arrived)
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByEndpoint[rt.endpoint]++
	s.stats.ByStatus[rec.label()]++
	s.mu.Unlock()
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "endpoint", rt.endpoint, "status", rec.label(), "arrived", arrived.UTC().Format(time.RFC3339Nano))
}

func (s *Server) serveAPI(w *recorder, r *http.Request, rt route, arrived time.Time) {
	if ok, blocked := s.admit(arrived); blocked {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, blockPage)
		return
	} else if !ok {
		s.writeTooMany(w, s.opts.RetryAfter, "Rate limit exceeded")
		return
	}
	if rt.endpoint == EndpointUnknown {
		writeJSON(w, http.StatusNotFound, apiError{ErrorCode: 404, ErrorType: "NOT_FOUND", ErrorDescription: "NOT_FOUND"})
		return
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeJSON(w, http.StatusMethodNotAllowed, apiError{ErrorCode: 405, ErrorType: "METHOD_NOT_ALLOWED",
			ErrorDescription: r.Method + " not allowed, use " + rt.method})
		return
	}
	want := s.opts.ScopeID
	if rt.endpoint == EndpointConnect {
		want = s.opts.ChannelID
	}
	// The secret is found through the scope, so an unknown scope is refused
	// before the signature can be checked.
	if rt.scope != want {
		s.count(func(st *Stats) { st.RejectedScope++ })
		s.log.Info("refused: unknown scope", "endpoint", rt.endpoint, "scope", rt.scope)
		writeJSON(w, http.StatusNotFound, errNotRegistered)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeInvalid(w, &invalidError{Field: "body", Reason: fmt.Sprintf("larger than %d bytes", MaxBody)})
		}
		return // the client is gone otherwise
	}
	if err := signer.Verify(r.Method, r.URL.Path, body, r.Header, s.opts.Secret, s.now()); err != nil {
		s.count(func(st *Stats) { st.RejectedSignature++ })
		s.log.Info("refused: signature", "endpoint", rt.endpoint, "reason", err.Error())
		writeJSON(w, http.StatusForbidden, errInvalidSignature)
		return
	}
	switch rt.endpoint {
	case EndpointNewMessage:
		s.serveNewMessage(w, r, body, arrived)
	case EndpointCreateChat:
		s.serveCreateChat(w, r, body)
	case EndpointHistory:
		s.serveHistory(w, r, rt.chatID)
	case EndpointConnect:
		s.serveConnect(w, body)
	}
}

// admit applies the block emulation and the rate limit to a request that
// arrived at now.
func (s *Server) admit(now time.Time) (ok, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked {
		s.stats.BlockedRequests++
		return false, true
	}
	s.win.add(now)
	if s.bucket.allow(now) {
		return true, false
	}
	s.stats.RateLimited++
	s.limited++
	if s.opts.BlockAfter > 0 && s.limited >= s.opts.BlockAfter && !s.blocked {
		s.blocked = true
		s.log.Warn("block emulation: account blocked; every request now gets 403 until POST /_sim/unblock", "after_429s", s.limited)
	}
	return false, false
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// drawFault decides this request's fault and latency. One draw per request
// (two with jitter) in arrival order keeps a seed reproducible.
func (s *Server) drawFault(endpoint string) (kind string, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind = s.faults.pick(s.rng.Float64())
	delay = s.opts.Latency
	if s.opts.Jitter > 0 {
		delay += time.Duration(s.rng.Int64N(int64(s.opts.Jitter)))
	}
	if endpoint != EndpointNewMessage && kind != Fault500 && kind != Fault503 && kind != FaultHang {
		kind = ""
	}
	if kind != "" {
		s.stats.Faults[kind]++
	}
	return kind, delay
}

// preFault injects the faults that strike before processing; it reports
// whether it answered (or hung up) so the caller must stop.
func (s *Server) preFault(w *recorder, r *http.Request, kind string, delay time.Duration) bool {
	if delay > 0 && !sleep(r.Context(), delay) {
		return true
	}
	switch kind {
	case Fault500:
		s.log.Info("fault injected", "kind", kind, "path", r.URL.Path)
		writeJSON(w, http.StatusInternalServerError, serverError("injected fault"))
		return true
	case Fault503:
		s.log.Info("fault injected", "kind", kind, "path", r.URL.Path)
		writeJSON(w, http.StatusServiceUnavailable, problem{Title: "Service Unavailable", Type: "https://httpstatus.es/503",
			Status: 503, Detail: "injected fault"})
		return true
	case Fault429:
		s.log.Info("fault injected", "kind", kind, "path", r.URL.Path)
		s.writeTooMany(w, s.opts.FaultRetryAfter, "injected fault")
		return true
	case Fault400:
		s.log.Info("fault injected", "kind", kind, "path", r.URL.Path)
		writeJSON(w, http.StatusBadRequest, apiError{ErrorCode: 400, ErrorType: "INVALID_DATA", ErrorDescription: "injected fault: refused"})
		return true
	case FaultHang:
		s.log.Info("fault injected", "kind", kind, "path", r.URL.Path)
		if sleep(r.Context(), s.opts.Hang) {
			writeJSON(w, http.StatusGatewayTimeout, problem{Title: "Gateway Timeout", Type: "https://httpstatus.es/504",
				Status: 504, Detail: "injected hang"})
		}
		return true
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type newMessageResult struct {
	ConversationID string  `json:"conversation_id"`
	SenderID       string  `json:"sender_id"`
	ReceiverID     *string `json:"receiver_id"`
	MsgID          string  `json:"msgid"`
	RefID          string  `json:"ref_id"`
}

func (s *Server) serveNewMessage(w *recorder, r *http.Request, body []byte, arrived time.Time) {
	kind, delay := s.drawFault(EndpointNewMessage)
	if s.preFault(w, r, kind, delay) {
		return
	}
	m, ierr := parseNewMessage(body)
	if ierr != nil {
		s.writeInvalid(w, ierr)
		return
	}
	if kind == FaultAcceptLose {
		s.log.Info("fault injected", "kind", kind, "msgid", m.msgID)
		writeJSON(w, http.StatusOK, map[string]newMessageResult{"new_message": s.lose(m)})
		return
	}
	res, seq, err := s.accept(m, arrived)
	if err != nil {
		s.log.Error("ledger write", "err", err)
		writeJSON(w, http.StatusInternalServerError, serverError("ledger write failed"))
		return
	}
	if seq > 0 {
		s.fetchMedia(m, seq) // after accepting, as Kommo does, whatever the answer
	}
	switch kind {
	case FaultAccept500:
		s.log.Info("fault injected", "kind", kind, "msgid", m.msgID)
		writeJSON(w, http.StatusInternalServerError, serverError("injected fault after accepting"))
		return
	case FaultAcceptDrop:
		s.log.Info("fault injected", "kind", kind, "msgid", m.msgID)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			w.dropped = true
			return
		}
		panic(http.ErrAbortHandler) // no hijacking (HTTP/2): abort the stream instead
	}
	writeJSON(w, http.StatusOK, map[string]newMessageResult{"new_message": res})
}

// accept records a valid message (or, for a repeated msgid in idempotent
// mode, returns the first answer, and seq 0).
func (s *Server) accept(m *newMessage, arrived time.Time) (newMessageResult, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.byMsgID[m.msgID]
	if prev != nil && s.opts.IdempotentMsgID {
		s.stats.IdempotentRepeats++
		return prev.response, 0, nil
	}
	now := s.now()
	c := s.ensureChat(m.conversationID)
	st := &stored{seq: s.seq + 1, kommoID: s.uuid(), msg: m, visibleAt: now.Add(s.opts.HistoryDelay)}
	st.senderID = m.sender.RefID
	if st.senderID == "" {
		st.senderID = s.userFor(m.sender, "", "").id
	}
	st.response = newMessageResult{ConversationID: c.id, SenderID: st.senderID, MsgID: st.kommoID, RefID: m.msgID}
	if m.receiver != nil {
		st.receiverID = s.userFor(*m.receiver, "", "").id
		st.response.ReceiverID = &st.receiverID
	}
	e := LedgerEntry{
		Seq: st.seq, ReceivedAt: now, ArrivedAt: arrived, ScopeID: s.opts.ScopeID, ConversationID: m.conversationID, ChatID: c.id,
		MsgID: m.msgID, KommoMsgID: st.kommoID, Silent: m.silent, MsecTimestamp: m.msecTimestamp,
		Duplicate: prev != nil, Payload: m.raw,
	}
	if s.opts.Ledger != nil {
		line, err := json.Marshal(e)
		if err != nil {
			return newMessageResult{}, 0, fmt.Errorf("encode ledger entry: %w", err)
		}
		if _, err := s.opts.Ledger.Write(append(line, '\n')); err != nil {
			return newMessageResult{}, 0, fmt.Errorf("write ledger: %w", err)
		}
		if f, ok := s.opts.Ledger.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				return newMessageResult{}, 0, fmt.Errorf("flush ledger: %w", err)
			}
		}
	}
	s.seq = st.seq
	s.ledger = append(s.ledger, e)
	c.messages = append(c.messages, st)
	if !m.silent && c.link == nil && !c.lead {
		c.lead = true
		s.stats.IncomingLeads++
	}
	if prev == nil {
		s.byMsgID[m.msgID] = st
	} else {
		s.stats.Duplicates++
	}
	s.stats.Accepted++
	return st.response, st.seq, nil
}

// lose answers a valid message as accept does and records nothing of it
// but its chat (FaultAcceptLose): no ledger entry, no history, and sending
// the msgid again is no duplicate.
func (s *Server) lose(m *newMessage) newMessageResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ensureChat(m.conversationID)
	res := newMessageResult{ConversationID: c.id, SenderID: m.sender.RefID, MsgID: s.uuid(), RefID: m.msgID}
	if res.SenderID == "" {
		res.SenderID = s.userFor(m.sender, "", "").id
	}
	if m.receiver != nil {
		id := s.userFor(*m.receiver, "", "").id
		res.ReceiverID = &id
	}
	s.stats.Lost++
	return res
}

// ReplyTo is the message the entry's payload quotes (reply_to.message): its
// Kommo id, or its msgid when it was quoted without an id; "" when the
// message is no reply. It reads Payload, so it works on entries read back
// from a ledger file too.
func (e LedgerEntry) ReplyTo() string {
	p, ierr := decodeObject(e.Payload, "payload")
	if ierr != nil {
		return ""
	}
	ref, _ := parseReplyTo(p, "payload")
	return ref
}

// Forward is the message the entry's payload forwards (forwards.messages[0]),
// named as in ReplyTo; "" when it forwards nothing.
func (e LedgerEntry) Forward() string {
	p, ierr := decodeObject(e.Payload, "payload")
	if ierr != nil {
		return ""
	}
	ref, _ := parseForwards(p, "payload")
	return ref
}

// ensureChat returns the chat of a conversation, creating it. Callers hold s.mu.
func (s *Server) ensureChat(conversationID string) *chat {
	if c, ok := s.chats[conversationID]; ok {
		return c
	}
	c := &chat{id: s.uuid(), conversationID: conversationID}
	s.chats[conversationID] = c
	s.chatByID[c.id] = c
	s.stats.ChatsCreated++
	return c
}

// userFor returns the Kommo user of a client-side participant id, creating
// it; an existing user keeps its first data, as the API documents. Callers hold s.mu.
func (s *Server) userFor(p participant, phone, email string) *user {
	if u, ok := s.users[p.ID]; ok {
		return u
	}
	u := &user{id: s.uuid(), clientID: p.ID, name: p.Name, avatar: p.Avatar, phone: phone, email: email}
	s.users[p.ID] = u
	return u
}

type chatUser struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name"`
	Avatar   string `json:"avatar,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Email    string `json:"email,omitempty"`
}

type createChatResult struct {
	ID   string   `json:"id"`
	User chatUser `json:"user"`
}

func (s *Server) serveCreateChat(w *recorder, r *http.Request, body []byte) {
	kind, delay := s.drawFault(EndpointCreateChat)
	if s.preFault(w, r, kind, delay) {
		return
	}
	req, ierr := parseCreateChat(body)
	if ierr != nil {
		s.writeInvalid(w, ierr)
		return
	}
	s.mu.Lock()
	c := s.ensureChat(req.conversationID)
	u := s.userFor(req.user, req.phone, req.email)
	res := createChatResult{ID: c.id, User: chatUser{ID: u.id, ClientID: u.clientID, Name: u.name, Avatar: u.avatar, Phone: u.phone, Email: u.email}}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
}

type historyParticipant struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id,omitempty"`
	Name     string `json:"name"`
	Avatar   string `json:"avatar,omitempty"`
}

type historyItem struct {
	Timestamp     int64               `json:"timestamp"`
	MsecTimestamp int64               `json:"msec_timestamp"`
	Sender        historyParticipant  `json:"sender"`
	Receiver      *historyParticipant `json:"receiver,omitempty"`
	Message       map[string]any      `json:"message"`
}

func (s *Server) serveHistory(w *recorder, r *http.Request, chatID string) {
	kind, delay := s.drawFault(EndpointHistory)
	if s.preFault(w, r, kind, delay) {
		return
	}
	q := r.URL.Query()
	offset, limit := 0, MaxHistoryLimit
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.writeInvalid(w, invalid("offset", "must be a non-negative integer, got %q", v))
			return
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			s.writeInvalid(w, invalid("limit", "must be an integer from 1 to %d, got %q", MaxHistoryLimit, v))
			return
		}
		limit = n
	}
	s.mu.Lock()
	var visible []*stored
	if c, ok := s.chatByID[chatID]; ok {
		now := s.now()
		for _, m := range c.messages {
			if !m.visibleAt.After(now) {
				visible = append(visible, m)
			}
		}
	}
	s.mu.Unlock()
	if len(visible) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// Newest first, as the documented example lists them: by time, arrival
	// order breaking ties; or (HistoryOrderArrival) by arrival alone, as a
	// chat that cannot insert a message before those it already shows.
	slices.SortFunc(visible, func(a, b *stored) int {
		if a.msg.msecTimestamp != b.msg.msecTimestamp && s.opts.HistoryOrder != HistoryOrderArrival {
			return cmpInt(b.msg.msecTimestamp, a.msg.msecTimestamp)
		}
		return cmpInt(b.seq, a.seq)
	})
	page := visible[min(offset, len(visible)):min(offset+limit, len(visible))]
	items := make([]historyItem, 0, len(page))
	for _, m := range page {
		it := historyItem{Timestamp: m.msg.timestamp, MsecTimestamp: m.msg.msecTimestamp, Message: map[string]any{}}
		it.Sender = historyParticipant{ID: m.senderID, Name: m.msg.sender.Name, Avatar: m.msg.sender.Avatar}
		if m.msg.sender.RefID == "" {
			it.Sender.ClientID = m.msg.sender.ID // client_id only for external participants
		}
		if rc := m.msg.receiver; rc != nil {
			it.Receiver = &historyParticipant{ID: m.receiverID, ClientID: rc.ID, Name: rc.Name, Avatar: rc.Avatar}
		}
		for k, v := range m.msg.message {
			it.Message[k] = v
		}
		it.Message["id"] = m.kommoID
		it.Message["client_id"] = m.msg.msgID
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, map[string][]historyItem{"messages": items})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type connectResult struct {
	AccountID            string `json:"account_id"`
	HookAPIVersion       string `json:"hook_api_version"`
	Title                string `json:"title,omitempty"`
	IsTimeWindowDisabled *bool  `json:"is_time_window_disabled,omitempty"`
	ScopeID              string `json:"scope_id"`
}

func (s *Server) serveConnect(w *recorder, body []byte) {
	top, ierr := decodeObject(body, "body")
	if ierr == nil {
		ierr = s.fillConnect(top, w)
	}
	if ierr != nil {
		s.writeInvalid(w, ierr)
	}
}

func (s *Server) fillConnect(top obj, w *recorder) *invalidError {
	var res connectResult
	var ierr *invalidError
	if res.AccountID, ierr = top.str("", "account_id", true); ierr != nil {
		return ierr
	}
	if res.Title, ierr = top.str("", "title", false); ierr != nil {
		return ierr
	}
	if res.HookAPIVersion, ierr = top.str("", "hook_api_version", false); ierr != nil {
		return ierr
	}
	switch res.HookAPIVersion {
	case "":
		res.HookAPIVersion = "v1" // the documented default
	case "v1", "v2":
	default:
		return invalid("hook_api_version", "must be v1 or v2, got %q", res.HookAPIVersion)
	}
	if v, ok := top["is_time_window_disabled"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return invalid("is_time_window_disabled", "must be a boolean")
		}
		res.IsTimeWindowDisabled = &b
	}
	res.ScopeID = s.opts.ScopeID
	writeJSON(w, http.StatusOK, res)
	return nil
}

// apiError is amojo's error triplet, field order as documented.
type apiError struct {
	Status           int    `json:"status"`
	ErrorCode        int    `json:"error_code"`
	ErrorType        string `json:"error_type"`
	ErrorDescription string `json:"error_description"`
}

var (
	errInvalidSignature = apiError{ErrorCode: 403, ErrorType: "ORIGIN_INVALID_SIGNATURE", ErrorDescription: "invalid signature"}
	errNotRegistered    = apiError{ErrorCode: 404, ErrorType: "ORIGIN_NOT_REGISTERED", ErrorDescription: "NOT_FOUND"}
)

// problem is the main API's error shape (429, 5xx).
type problem struct {
	Title      string `json:"title"`
	Type       string `json:"type,omitempty"`
	Status     int    `json:"status"`
	Detail     string `json:"detail"`
	RetryAfter *int   `json:"retry_after,omitempty"`
	TraceID    string `json:"trace_id,omitempty"`
}

func serverError(detail string) problem {
	return problem{Title: "ErrInternalServer", Status: 500, Detail: detail, TraceID: "kommo-sim"}
}

func (s *Server) writeInvalid(w http.ResponseWriter, e *invalidError) {
	s.count(func(st *Stats) { st.RejectedInvalid++ })
	s.log.Info("refused: invalid data", "reason", e.Error())
	writeJSON(w, http.StatusBadRequest, apiError{ErrorCode: 400, ErrorType: "INVALID_DATA", ErrorDescription: e.Error()})
}

func (s *Server) writeTooMany(w http.ResponseWriter, after time.Duration, detail string) {
	n := int(math.Ceil(after.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(n))
	writeJSON(w, http.StatusTooManyRequests, problem{Title: "Too Many Requests", Type: "https://httpstatus.es/429",
		Status: 429, Detail: detail, RetryAfter: &n})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
