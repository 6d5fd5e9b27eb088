package importer

import "github.com/kommo-import/kommo-import/importer/internal/store"

// State is a message's checkpoint state, as the messages table stores it.
type State = store.State

// The states of a message. A message goes pending → sending → sent (or
// failed); a message found sending is in doubt until its chat's history
// says whether it landed.
const (
	StatePending = store.StatePending
	StateSending = store.StateSending // an attempt may have landed: in doubt
	StateSent    = store.StateSent
	StateFailed  = store.StateFailed  // refused by the API for good
	StateSkipped = store.StateSkipped // given up by an operator (retry --skip): never sent
)

// Phase is what an invocation of Run is doing.
type Phase string

// The phases of Run, in order.
const (
	PhaseStarting Phase = "starting"
	PhaseStaging  Phase = "staging"
	PhasePlanning Phase = "planning"
	PhaseSending  Phase = "sending"
	PhaseDone     Phase = "done"
)

// Notify says which messages are loud (silent=false).
type Notify string

// Notify modes.
const (
	// NotifyNewest: the newest message of each conversation is loud (one
	// incoming lead and one notification per chat, as Kommo advises).
	NotifyNewest Notify = "newest"
	// NotifyNewestIncoming: the newest incoming message (from the client) is
	// loud; outgoing messages after it stay silent. For exports whose chats
	// often end with a manager's reply.
	NotifyNewestIncoming Notify = "newest-incoming"
	// NotifyNone: everything silent.
	NotifyNone Notify = "none"
)

// Valid reports whether n is one of the modes.
func (n Notify) Valid() bool {
	return n == NotifyNewest || n == NotifyNewestIncoming || n == NotifyNone
}

// RunState is a run's state as Status derives it.
type RunState string

// The states of a run.
const (
	RunStaging     RunState = "staging"     // a live process stages or plans it
	RunSending     RunState = "sending"     // a live process sends it
	RunInterrupted RunState = "interrupted" // work left and no live process: run the same command to resume
	RunDone        RunState = "done"        // everything sent
	RunIncomplete  RunState = "incomplete"  // nothing left to send, but failed messages or rejected records
	RunAbandoned   RunState = "abandoned"   // given up by an operator; its unsent msgids go to the next run that stages them
)
