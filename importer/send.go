package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/wire"
)

// The send path. A worker claims one conversation, sends its pending
// messages in order, and gives it back. No worker ever idles on one
// conversation's trouble: a message whose fate is unknown (in doubt) is
// looked up in its chat's history at once, and when it is not there yet the
// conversation is parked until the reconcile window since the attempt has
// passed (its later messages wait with it), and the worker takes another;
// a retryable failure parks it for its backoff the same way. Every HTTP
// attempt takes a slot of the scope's rate schedule (pacer.go); what to do
// after a failure is decided in one place (policy.go).

// historyPage is the largest page the history endpoint serves.
const historyPage = 50

// idlePoll is how soon a worker with nothing to claim looks again (a parked
// conversation's time may come, a dead process's leases may be freed); it
// backs off to idleMax while nothing comes free.
const (
	idlePoll = 250 * time.Millisecond
	idleMax  = 4 * idlePoll
)

// errLostLease means another worker may own the conversation now: stop
// working it without touching anything.
var errLostLease = errors.New("conversation lease lost")

// step says how a conversation was left.
type step int

const (
	stepDone   step = iota + 1 // the message was dealt with: sent, found, or failed for good
	stepSend                   // (reconcile) not in the chat after its window: send it again
	stepParked                 // the conversation is parked; the worker moves on
	stepHalted                 // a soft stop: the message was not started
	stepHeld                   // a message failed for good: the rest of the conversation waits for retry
)

type conversation struct {
	id       string
	chatID   string // Kommo's, once known
	owner    string // the lease owner: this process and worker, "process#worker"
	epoch    int64  // the claim's lease epoch
	failures int    // failed attempts in a row at its next message
	// fence is when a request of an earlier owner (whose lease expired or
	// whose process is gone) can no longer arrive, in our clock.
	fence time.Time
	// loud is the msgid that goes out loud ("": none), decided when the
	// conversation is claimed, over everything the scope holds.
	loud string
	// linked: the chat is on the client's existing contact (contacts.go):
	// every message of it goes out silent.
	linked bool
	// dealt counts its messages dealt with (sent, found, failed) and waited
	// the time its requests waited for their slots, for the pool's cycle.
	dealt  int
	waited time.Duration
}

// send runs the worker pool until every conversation of the run is done or
// the run must stop.
func (im *Importer) send(ctx context.Context, soft <-chan struct{}) error {
	if err := im.withDB(ctx, "progress", im.loadProgressBase); err != nil {
		return err
	}
	im.stats.phase.Store(PhaseSending)
	// A beat now: the throughput's first sample is the start of sending.
	if _, err := im.beat(ctx); err != nil && ctx.Err() == nil {
		im.log.Warn("heartbeat failed", "err", err)
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()

	// halt is closed by the first worker that must stop the run: the others
	// finish their request in flight, as on a soft stop.
	halt := make(chan struct{})
	var haltOnce sync.Once
	stop := func() { haltOnce.Do(func() { close(halt) }) }
	go func() {
		select {
		case <-soft:
			stop()
		case <-hbCtx.Done():
		}
	}()
	// Local files are put ahead of their messages' turns (media.go).
	stopUploader := im.startUploader(ctx, soft, halt)
	defer stopUploader()

	im.startLinking(ctx, halt)
	p := &pool{im: im, max: im.cfg.Workers}
	p.desired.Store(int64(min(poolStart, im.cfg.Workers)))
	if im.cfg.Rate <= 0 {
		p.desired.Store(int64(im.cfg.Workers))
	}
	im.stats.workers.Store(p.desired.Load())
	p.spawn(ctx, halt, stop)
	steered := make(chan struct{})
	go p.steer(halt, steered)
	g := &p.g
	err := g.Wait()
	close(steered)
	if err == nil && stopped(soft) {
		err = interrupted(CauseSignal, "", nil)
	}
	if err == nil {
		im.stats.phase.Store(PhaseDone)
	}
	return err
}

func (im *Importer) worker(ctx context.Context, owner string, halt <-chan struct{}, p *pool, stop func()) error {
	idlePolls := 0
	for {
		if stopped(halt) || p.surplus() {
			return nil
		}
		p.spawn(ctx, halt, stop)
		started := im.cfg.Clock.Now()
		if err := ctx.Err(); err != nil {
			return interrupted(CauseSignal, "", err)
		}
		conv, ok, err := im.claim(ctx, owner)
		if err != nil {
			return err
		}
		if !ok {
			im.cycles.idle.Add(1)
			left, wait, err := im.idle(ctx)
			if err != nil {
				return err
			}
			if left == 0 {
				return nil
			}
			// Looking again soon, less often the longer nothing comes free
			// (at most every idleMax: a dead process's conversations are
			// freed within a heartbeat and claimed within idleMax after).
			wait = min(wait, idlePoll<<min(idlePolls, 2))
			idlePolls++
			select {
			case <-halt:
			case <-ctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		idlePolls = 0
		st, err := im.work(ctx, &conv, halt)
		switch {
		case errors.Is(err, errLostLease):
			im.log.Warn("lost the lease of a conversation; leaving it to its new owner", "conversation_id", conv.id)
			err = nil
		case errors.Is(err, errGuard):
			// This process's liveness lapsed (a freeze, a lost database): its
			// lease may be another's now. Leave the conversation untouched.
			im.log.Warn("this process may have been taken for dead (no heartbeat for too long): leaving the conversation to whoever holds it now", "conversation_id", conv.id)
			err = nil
		case st == stepParked:
			// park gave the lease back
		default:
			if rerr := im.release(ctx, &conv, st == stepHeld); rerr != nil && err == nil {
				err = fmt.Errorf("release conversation %s: %w", conv.id, rerr)
			}
		}
		im.setActive(owner, "")
		if err != nil {
			return err
		}
		im.cycles.add(im.cfg.Clock.Now().Sub(started)-conv.waited, conv.dealt)
	}
}

// work sends the conversation's pending messages in order, a page at a time
// so that a conversation of any length is sent in constant memory.
func (im *Importer) work(ctx context.Context, conv *conversation, halt <-chan struct{}) (step, error) {
	afterMsec, afterSeq := int64(-1<<63), int64(-1<<63)
	for first := true; ; first = false {
		page, err := im.loadPending(ctx, conv.id, afterMsec, afterSeq)
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			return stepDone, nil
		}
		if first {
			// Before the conversation's first message goes out: its chat is
			// put on the client's contact (--link-contacts; contacts.go).
			if st, err := im.prepareConversation(ctx, conv, &page[0], halt); err != nil || st != 0 {
				return st, err
			}
		}
		for i := range page {
			if stopped(halt) {
				return stepHalted, nil
			}
			st, err := im.deliver(ctx, conv, &page[i], halt)
			if err != nil {
				return 0, err
			}
			if st == stepParked || st == stepHalted || st == stepHeld {
				return st, nil
			}
		}
		last := page[len(page)-1]
		afterMsec, afterSeq = last.Msec, last.Seq
	}
}

// deliver gets one message to the API exactly once, or leaves it for later.
func (im *Importer) deliver(ctx context.Context, conv *conversation, m *pendingMessage, halt <-chan struct{}) (step, error) {
	var p wire.Payload
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return 0, fmt.Errorf("message %s: stored payload: %w", m.MsgID, err)
	}
	// Loud or silent is decided now, over everything the scope holds: an
	// in-doubt message taken over by a run that brought newer messages is
	// no longer the newest, and goes out silent.
	// A chat linked to the client's contact goes all silent: the client has
	// a lead already.
	p.Silent = m.MsgID != conv.loud || conv.linked
	quoteDropped, err := im.resolveQuotes(ctx, &p)
	if err != nil {
		return 0, err
	}
	if m.State == StateSending {
		// An earlier attempt may have landed: look before sending again.
		if st, err := im.reconcile(ctx, conv, m, &p, halt); err != nil || st != stepSend {
			return st, err
		}
	}
	// A local file is uploaded ahead of its slot, and the request names it
	// by a URL made now (media.go). After the look-up: a message found
	// delivered needs no file, and one whose file fails now is known not
	// to have landed before it is failed.
	if st, err := im.prepareMedia(ctx, conv, m, &p, halt); err != nil || st != 0 {
		return st, err
	}
	for {
		var res *chatsapi.SendResult
		var settled bool // another process recorded it sent meanwhile
		d, err := im.att.attempt(ctx, halt, request{
			checkpoint: func(ctx context.Context) error {
				marked, err := im.markSending(ctx, conv, m.MsgID)
				if err == nil && !marked {
					settled = true
					return errSettled
				}
				m.State = StateSending
				return err
			},
			uncheckpoint: func(ctx context.Context, made bool) error { return im.markPending(ctx, conv, m, made) },
			guard:        im.alive,
			waited:       &conv.waited,
			do: func(ctx context.Context) (err error) {
				res, err = im.api.SendMessage(ctx, &p)
				return err
			},
		}, conv.failures)
		switch {
		case errors.Is(err, errHalted):
			return stepHalted, nil
		case settled:
			return stepDone, nil
		case errors.Is(err, errGuard):
			// This process's heartbeats are too old, or had a gap since the
			// checkpoint, for it to know its lease is still its own (a slow
			// database, a freeze). Beat now: if the database records it
			// alive, the next attempt's checkpoint proves the lease is
			// still this worker's, or finds it lost.
			if _, berr := im.beat(ctx); berr == nil && im.alive(im.cfg.Clock.Now()) {
				continue
			}
			return 0, err
		case err != nil:
			return 0, err
		}
		switch d.act {
		case 0:
			im.stats.sent.Add(1)
			conv.failures = 0
			conv.dealt++
			return stepDone, im.markSent(ctx, conv, store.Sent{MsgID: m.MsgID, KommoMsgID: res.MsgID, ChatID: res.ConversationID, SenderID: res.SenderID, QuoteDropped: quoteDropped})
		case actAbort:
			// Hard stop: the message stays "sending", in doubt, for the next run.
			return 0, interrupted(CauseSignal, "", d.err)
		case actStop:
			// The request was refused, not processed.
			if err := im.markPending(ctx, conv, m, true); err != nil {
				return 0, err
			}
			return 0, d.err
		case actFail:
			return im.fail(ctx, conv, m, d.api.Error())
		}
		// Retryable.
		im.stats.retries.Add(1)
		conv.failures++
		if conv.failures >= im.cfg.MaxAttempts {
			if !d.inDoubt {
				if err := im.markPending(ctx, conv, m, true); err != nil {
					return 0, err
				}
			}
			return 0, interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at message %s", conv.failures, m.MsgID), d.api)
		}
		im.log.Info("retrying later", "msgid", m.MsgID, "attempt", conv.failures+1, "in_doubt", d.inDoubt, "err", d.api)
		if !d.inDoubt {
			if err := im.markPending(ctx, conv, m, true); err != nil {
				return 0, err
			}
			return stepParked, im.park(ctx, conv, d.after, "")
		}
		// The attempt has ended: its connection was closed with a reset, so
		// nothing of it can arrive later; the window counts from now.
		m.Age, m.Ended = 0, true
		if st, err := im.reconcile(ctx, conv, m, &p, halt); err != nil || st != stepSend {
			return st, err
		}
		// Not found after its window: send again.
	}
}

// reconcile settles an in-doubt message: it looks the message up in its
// chat's history at once (most accepted-then-failed requests are there
// already), or, when look-ups at once have been missing messages the API
// shows only later, a while after the attempt (settling). Found: it is
// marked sent. Not found while the reconcile window since the attempt has
// not passed (the API processes messages asynchronously): the conversation
// is parked until it has, and looked up again then. Not found after the
// window: the caller sends it again.
func (im *Importer) reconcile(ctx context.Context, conv *conversation, m *pendingMessage, p *wire.Payload, halt <-chan struct{}) (step, error) {
	atOnce := m.Ended && m.Age == 0 // this process's attempt has just ended
	if atOnce && im.settling.late() {
		if wait := min(im.cfg.ReconcileWait/settleShare, im.resendWait(conv, m)); wait > 0 {
			im.log.Info("in-doubt message: looking it up in its chat's history a while after the attempt (the API shows messages late)",
				"msgid", m.MsgID, "conversation_id", conv.id, "at", im.cfg.Clock.Now().Add(wait).Format(time.TimeOnly))
			return stepParked, im.park(ctx, conv, wait, endedID(m))
		}
	}
	im.stats.reconciled.Add(1)
	found, d, err := im.lookup(ctx, conv, m, p, halt)
	if err == nil && d.act == 0 {
		im.settling.learn(m.MsgID, atOnce, found)
	}
	switch {
	case errors.Is(err, errHalted):
		// A soft stop during a pause: the message stays in doubt, looked
		// up by the next run.
		return stepHalted, nil
	case err != nil:
		// The database, not the API: a lost lease, an outage past its limit.
		return 0, err
	}
	switch d.act {
	case actAbort:
		return 0, interrupted(CauseSignal, "", d.err)
	case actStop:
		return 0, d.err
	case actFail:
		// The history cannot be read for this chat: sending again could
		// duplicate the message, so it fails with the reason.
		return im.fail(ctx, conv, m, "in doubt, and its chat's history could not be read: "+d.api.Error())
	case actRetry:
		im.stats.retries.Add(1)
		conv.failures++
		if conv.failures >= im.cfg.MaxAttempts {
			return 0, interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at looking up message %s", conv.failures, m.MsgID), d.api)
		}
		return stepParked, im.park(ctx, conv, max(d.after, im.resendWait(conv, m)), endedID(m))
	}
	if found {
		return stepDone, nil
	}
	if wait := im.resendWait(conv, m); wait > 0 {
		im.log.Info("in-doubt message not in its chat's history yet: parking the conversation", "msgid", m.MsgID, "conversation_id", conv.id, "until", im.cfg.Clock.Now().Add(wait).Format(time.TimeOnly))
		return stepParked, im.park(ctx, conv, wait, endedID(m))
	}
	return stepSend, nil
}

// settleShare: a first look-up that waits, waits this share of the
// reconcile window after the attempt (2.5 s of the default 10 s).
const settleShare = 4

// settling learns whether a look-up right after an in-doubt attempt finds
// the messages the API took. Kommo processes messages asynchronously; one
// that shows them late makes the look-up at once a slot of the rate spent
// for nothing (the message is found by the one after the window: two
// look-ups a message). Once look-ups at once have missed more messages (at
// least three) than they found, the first look-up waits settleShare of the
// window (reconcile); what it finds then is not counted.
type settling struct {
	found  atomic.Int64 // in-doubt messages the look-up at once found
	missed atomic.Int64 // ... it missed and a later look-up found
	// pending: the msgids the look-up at once missed, until a later
	// look-up settles them.
	pending sync.Map
}

func (s *settling) late() bool {
	m := s.missed.Load()
	return m >= 3 && m > s.found.Load()
}

// learn records what a look-up of msgid found; atOnce: right after its
// attempt.
func (s *settling) learn(msgID string, atOnce, found bool) {
	switch {
	case atOnce && found:
		s.found.Add(1)
	case atOnce:
		s.pending.Store(msgID, struct{}{})
	default:
		if _, missed := s.pending.LoadAndDelete(msgID); missed && found {
			s.missed.Add(1)
		}
	}
}

// resendWait is how long an in-doubt message that its chat's history does
// not show must still wait before it may be sent again: until the API's
// asynchronous processing (ReconcileWait) has had its time after the
// attempt could last arrive. That is the attempt's start (or its end, once
// this process closed it), or, when an earlier owner of the conversation
// froze or died with a request on the way, the conversation's fence (that
// owner's liveness deadline plus its request timeout).
func (im *Importer) resendWait(conv *conversation, m *pendingMessage) time.Duration {
	return resendWait(im.cfg.Clock.Now(), m.Age, conv.fence, im.cfg.ReconcileWait)
}

// resendWait: now, the time since the attempt, the fence (zero: none) and
// the window → the wait (0: send now).
func resendWait(now time.Time, sinceAttempt time.Duration, fence time.Time, window time.Duration) time.Duration {
	wait := window - sinceAttempt
	if !fence.IsZero() {
		wait = max(wait, fence.Add(window).Sub(now))
	}
	return max(wait, 0)
}

// endedID is the msgid of an in-doubt message whose attempt this process
// has just ended, for park to record; "" otherwise.
func endedID(m *pendingMessage) string {
	if m.Ended {
		return m.MsgID
	}
	return ""
}

// fail records a message the API refused for good (or whose fate cannot be
// known). By default (OnFailure hold) the rest of its conversation waits
// for it: retry sends it and then the rest, in order; with continue, the
// conversation goes on without it.
func (im *Importer) fail(ctx context.Context, conv *conversation, m *pendingMessage, reason string) (step, error) {
	im.stats.failed.Add(1)
	conv.failures = 0
	conv.dealt++
	im.log.Warn("message refused by the API", "msgid", m.MsgID, "conversation_id", conv.id, "err", reason)
	if err := im.markFailed(ctx, conv, m.MsgID, reason); err != nil {
		return 0, err
	}
	if im.cfg.OnFailure == OnFailureContinue {
		return stepDone, nil
	}
	return stepHeld, nil
}

// lookup looks for an in-doubt message in its chat's history (its msgid
// comes back as client_id) and marks it sent when found. The chat id comes
// from an earlier response, or from create-chat, which is idempotent. A
// failed request's decision is returned for reconcile to act on.
func (im *Importer) lookup(ctx context.Context, conv *conversation, m *pendingMessage, p *wire.Payload, halt <-chan struct{}) (bool, decision, error) {
	if conv.chatID == "" {
		var chat *chatsapi.Chat
		d, err := im.att.attempt(ctx, halt, request{waited: &conv.waited, do: func(ctx context.Context) (err error) {
			chat, err = im.api.CreateChat(ctx, conv.id, chatUser(p))
			return err
		}}, conv.failures)
		if err != nil || d.act != 0 {
			return false, d, err
		}
		conv.chatID = chat.ID
		if err := im.saveChat(ctx, conv); err != nil {
			return false, decision{}, err
		}
	}
	for offset := 0; ; offset += historyPage {
		var page []chatsapi.HistoryMessage
		d, err := im.att.attempt(ctx, halt, request{waited: &conv.waited, do: func(ctx context.Context) (err error) {
			page, err = im.api.History(ctx, conv.chatID, offset, historyPage)
			return err
		}}, conv.failures)
		if err != nil || d.act != 0 {
			return false, d, err
		}
		for _, h := range page {
			if h.Message.ClientID != m.MsgID {
				continue
			}
			im.stats.reconciledFound.Add(1)
			conv.failures = 0
			conv.dealt++
			im.log.Info("in-doubt message found in the chat's history: not sending it again", "msgid", m.MsgID, "conversation_id", conv.id)
			sender := ""
			if h.Sender != nil {
				sender = h.Sender.ID
			}
			return true, decision{}, im.markSent(ctx, conv, store.Sent{MsgID: m.MsgID, KommoMsgID: h.Message.ID, ChatID: conv.chatID, SenderID: sender, Reconciled: true})
		}
		// Newest first: once a page reaches older messages than ours, ours is not there.
		if len(page) < historyPage || page[len(page)-1].MsecTimestamp < m.Msec {
			return false, decision{}, nil
		}
	}
}

// chatUser is the chat's client: the sender of an incoming message, the
// receiver of an outgoing one.
func chatUser(p *wire.Payload) wire.Participant {
	u := p.Sender
	if p.Receiver != nil {
		u = p.Receiver
	}
	if u == nil {
		return wire.Participant{ID: p.ConversationID, Name: p.ConversationID}
	}
	return wire.Participant{ID: u.ID, Name: u.Name, Avatar: u.Avatar, Profile: u.Profile, ProfileLink: u.ProfileLink}
}

// claim leases at most one conversation to owner. An UPDATE that returns
// more than one row would be the stall this query was rewritten against:
// it fails loudly instead of working one and holding the rest.
func (im *Importer) claim(ctx context.Context, owner string) (conversation, bool, error) {
	var claimed []store.Claimed
	err := im.withDB(ctx, "claim", func(ctx context.Context) (err error) {
		claimed, err = im.q.ClaimConversation(ctx, store.ClaimParams{Run: im.cfg.Run, Scope: im.cfg.ScopeID, Owner: owner,
			Lease: im.cfg.Lease, RequestTimeout: im.cfg.RequestTimeout, Notify: string(im.cfg.Notify)})
		return err
	})
	switch {
	case err != nil:
		return conversation{}, false, fmt.Errorf("claim conversation: %w", err)
	case len(claimed) == 0:
		return conversation{}, false, nil
	case len(claimed) > 1:
		return conversation{}, false, fmt.Errorf("claim conversation: one claim leased %d conversations; refusing to go on", len(claimed))
	}
	c := claimed[0]
	im.setActive(owner, c.ID)
	conv := conversation{id: c.ID, chatID: c.ChatID, owner: owner, epoch: c.Epoch, failures: c.Failures, loud: c.Loud}
	if c.FenceLeft > 0 {
		conv.fence = im.cfg.Clock.Now().Add(c.FenceLeft)
	}
	return conv, true, nil
}

// idle finds out why nothing could be claimed: it returns how many
// conversations are left (0: the worker is done) and how long to wait
// before trying again, and says why in the progress and, when it lasts,
// in the log.
func (im *Importer) idle(ctx context.Context) (left int64, wait time.Duration, err error) {
	var w store.Idle
	err = im.withDB(ctx, "count", func(ctx context.Context) (err error) {
		w, err = im.q.WhyIdle(ctx, im.cfg.Run)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("send: %w", err)
	}
	left, leased, owner, parked := w.Left, w.Leased, w.Owner, w.Parked
	if left == 0 {
		im.stats.waiting.Store("")
		return 0, 0, nil
	}
	// Other workers of this process still sending is the normal end of a
	// run, not waiting: things move.
	ownTail := leased > 0 && owner == im.procID && parked == 0
	var parts []string
	if leased > 0 {
		who := "this process"
		if owner != im.procID {
			who = "process " + owner
		}
		parts = append(parts, fmt.Sprintf("%d held by %s (lease %s)", leased, who, w.LeaseLeft.Round(time.Second)))
	}
	if parked > 0 {
		parts = append(parts, fmt.Sprintf("%d parked, next in %s (in doubt, a retry's backoff, or the main API's pause)", parked, w.ParkLeft.Round(time.Second)))
	}
	if len(parts) == 0 {
		parts = append(parts, "none claimable yet")
	}
	why := fmt.Sprintf("%d conversations left: %s", left, strings.Join(parts, "; "))
	if ownTail {
		im.stats.waiting.Store("")
	} else {
		im.stats.waiting.Store(why)
	}
	im.idleLog.note(im.log, why, ownTail)
	wait = idleMax
	if parked > 0 && w.ParkLeft > 0 {
		wait = min(wait, w.ParkLeft+10*time.Millisecond)
	}
	return left, wait, nil
}

// idleLogger says why workers wait once it has lasted a while, and then
// every 30 seconds, never silently.
type idleLogger struct {
	mu     sync.Mutex
	since  time.Time // the start of this episode of idleness
	last   time.Time // the last note
	logged time.Time
}

// note records that a worker found nothing to claim, for why. ownTail: only
// this process's other workers hold what is left (the normal end of a run).
func (l *idleLogger) note(log interface{ Info(string, ...any) }, why string, ownTail bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) > 2*idleMax {
		l.since = now // a new episode
	}
	l.last = now
	if !ownTail && now.Sub(l.since) > 5*time.Second && now.Sub(l.logged) > 30*time.Second {
		log.Info("waiting: nothing to claim", "why", why)
		l.logged = now
	}
}
