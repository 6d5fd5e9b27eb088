package importer

import "time"

// The defaults of Config and VerifyConfig, in one place: a zero field takes
// its default here, and the command line's flags show and use the same
// values. A flag refuses a value the importer would not honour (zero where
// zero means "the default") rather than have it rewritten silently.
const (
	DefaultRate           = 5.0 // requests/s; Kommo allows 7
	DefaultWorkers        = 8
	DefaultLease          = 60 * time.Second
	DefaultHeartbeat      = time.Second
	DefaultReconcileWait  = 10 * time.Second
	DefaultMaxAttempts    = 8
	DefaultBackoffBase    = time.Second
	DefaultBackoffMax     = 60 * time.Second
	DefaultPause          = 60 * time.Second // a 429 without retry-after
	DefaultBatchSize      = 10000
	DefaultDBOutageLimit  = 5 * time.Minute
	DefaultRequestTimeout = 30 * time.Second
)

// Config.OnFailure values.
const (
	OnFailureHold     = "hold"
	OnFailureContinue = "continue"
)

// Config.Older values.
const (
	OlderSend = "send"
	OlderSkip = "skip"
)

// orDefault sets *v to def when it is zero (or negative, for durations and
// counts that cannot be).
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// retryDefaults fills the retry settings Config and VerifyConfig share.
func retryDefaults(maxAttempts *int, base, maxBackoff, pause *time.Duration) {
	orDefault(maxAttempts, DefaultMaxAttempts)
	orDefault(base, DefaultBackoffBase)
	orDefault(maxBackoff, DefaultBackoffMax)
	orDefault(pause, DefaultPause)
}
