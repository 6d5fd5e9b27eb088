package importer

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// MessageCounts breaks a run's messages down so that they add up: every
// message the run staged or took over is in exactly one of the other
// counts, Staged + TakenOver = Sent + Pending + InDoubt + Held + Failed +
// GivenUp + HandedOver.
type MessageCounts struct {
	Staged    int64 `json:"staged"`     // read from the source and added by this run
	TakenOver int64 `json:"taken_over"` // taken over from runs no process worked any more
	Sent      int64 `json:"sent"`
	Pending   int64 `json:"pending"`  // to send, not held
	InDoubt   int64 `json:"in_doubt"` // an attempt may have landed: looked up before it is sent again; not held
	// Held wait behind a failed message of their conversation
	// (--on-failure hold) until retry sends it or gives it up.
	Held       int64 `json:"held"`
	Failed     int64 `json:"failed"`
	GivenUp    int64 `json:"given_up"`    // never sent, by choice: retry --skip, --older skip
	HandedOver int64 `json:"handed_over"` // taken over by later runs of the scope, which send them
}

// Total is what the run took on: staged and taken over.
func (c MessageCounts) Total() int64 { return c.Staged + c.TakenOver }

// Accounted is the sum of where the messages are now; it equals Total.
func (c MessageCounts) Accounted() int64 {
	return c.Sent + c.Pending + c.InDoubt + c.Held + c.Failed + c.GivenUp + c.HandedOver
}

// LostProcess is a process of a run that died without recording how its
// invocation ended (kill -9, a crash, a host cut off from the database),
// later than the last end that was recorded.
type LostProcess struct {
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// countsOf breaks the row's messages down (see MessageCounts).
func countsOf(r *store.RunStatusRow) MessageCounts {
	return MessageCounts{
		Staged: r.Staged, TakenOver: r.TakenOver, Sent: r.Sent,
		Pending: r.Pending - (r.HeldMessages - r.HeldSending), InDoubt: r.Sending - r.HeldSending, Held: r.HeldMessages,
		Failed: r.Failed, GivenUp: r.GivenUp, HandedOver: r.HandedOver,
	}
}

// lostOf is the row's lost process, nil for none.
func lostOf(r *store.RunStatusRow) *LostProcess {
	if r.LostAt.IsZero() {
		return nil
	}
	return &LostProcess{Host: r.LostHost, PID: r.LostPID, LastHeartbeat: r.LostAt}
}

// rejectMsgID is a rejected record's msgid as the rejects table keeps it
// (to tell the same record rejected again): "" for one that is no key of
// ours anyway (too long to index, NUL, not UTF-8).
func rejectMsgID(id string) string {
	if len(id) > 1000 || strings.ContainsRune(id, 0) || !utf8.ValidString(id) {
		return ""
	}
	return id
}

// RejectsFail reports whether the run's rejects make it incomplete: more
// new ones (not rejected by an earlier run of the scope, not acknowledged)
// than it allows.
func (s *RunStatus) RejectsFail() bool { return s.RejectedNew > s.MaxRejects }
