// Package importer is the heart of kommo-import: it stages a source into
// PostgreSQL, plans which message of each conversation is the loud one, and
// sends every message exactly once, in order, at the scope's rate,
// checkpointing each step so that a run stopped at any moment resumes with
// the same command and the same result.
//
// Exactly-once rests on three rules. A message is marked "sending"
// (committed) just before its request goes out, and "sent" with Kommo's ids
// after a 2xx. A message found "sending" later is in doubt and is looked up
// in its chat's history before it is ever sent again. And a conversation is
// worked by one worker at a time, under a lease that is renewed in the same
// statement that marks each message "sending".
//
// The rest is about never standing still. A claim leases exactly one
// conversation (send.go). A process is alive while its database session
// holds its advisory lock, so a killed process's conversations are free
// within a heartbeat (processes.go). Every HTTP attempt of every process
// takes a slot of one schedule per scope kept in PostgreSQL (pacer.go). An
// in-doubt message is looked up at once, and its conversation parked until
// its reconcile window has passed while the worker takes another. What to do
// after a failed attempt is decided in one place (policy.go). Staging is
// idempotent by (scope, msgid), so an input is read again from the start
// whenever resuming by position could skip something, and a run nobody
// works any more hands its unsent msgids to the next run that stages them
// (stage.go, lifecycle.go). A message whose media is a local file has the
// file put in a media store ahead of its turn, by an uploader that walks the
// run's files in send order and records each upload, and names it by a URL
// made right before its request (media.go).
//
// Errors are typed (errors.go): the command line maps them to words and
// exit codes.
package importer
