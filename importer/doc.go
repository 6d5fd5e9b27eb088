// Package importer is the heart of kommo-import: it stages a source into
// PostgreSQL, plans which message of each conversation is the loud one, and
// sends every message exactly once, in order, through a shared rate limiter,
// checkpointing each step so that a run stopped at any moment resumes with the
// same command and the same result.
//
// Exactly-once rests on three rules. A message is marked "sending" (committed)
// before its request goes out, and "sent" with Kommo's ids after a 2xx. A
// message found "sending" later is in doubt and is looked up in the chat's
// history before it is ever sent again. And a conversation is worked by one
// worker at a time, under a lease that is renewed in the same statement that
// marks each message "sending".
package importer
