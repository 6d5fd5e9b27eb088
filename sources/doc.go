// Package sources reads a user's export (CSV, JSONL or a PostgreSQL query or
// table) and yields one validated wire.Payload per message, with the
// record's position in its source.
//
// Every adapter streams: memory does not grow with the input, apart from the
// small index that detects repeated msgids (a 16-byte map entry a message,
// about 30-40 MB live for a million). A bad record never stops the stream:
// Next returns it as a *LineError naming the file, line, field and reason, and
// the caller goes on calling Next. Only an input that cannot be read on stops
// it, with a *ReadError (a .gz cut short: ErrTruncated; a second CSV header
// with other columns: ErrSecondHeader); input that cannot be read at all
// (UTF-16, CR-only line ends, a JSON array given as JSONL) fails at Open. All
// adapters share one validation (Validate), so the same logical data gives
// the same records whatever the format; JSONL keys that are not part of the
// payload are counted in Stats.UnknownFields (Spec.Strict rejects them).
package sources
