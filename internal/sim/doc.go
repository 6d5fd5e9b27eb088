// Package sim is kommo-sim: a local, strict stand-in for the Kommo Chats API
// ("amojo") that the importer's tests, the demo and dry-run rehearsals talk to
// instead of https://amojo.kommo.com.
//
// It behaves the way the API is documented to (see
// shared/reference/kommo-chats-api.md): every request is verified with
// signer.Verify and refused with the documented 403 body; payloads are
// validated field by field (400 INVALID_DATA naming the field); a token bucket
// enforces the 7 requests/s limit with the documented 429 body and, on demand,
// the "blocked" 403 HTML page that follows repeated excess. Where the
// documentation is silent it picks the behaviour that is worst for a client: a
// repeated msgid creates a duplicate message, and history shows a message only
// after an asynchronous-processing delay.
//
// On top of that it injects seeded, reproducible faults (5xx before or after
// accepting, spurious 429, hangs, dropped connections, latency) and records
// every accepted message in a JSONL ledger, so a test or an operator can check
// afterwards exactly what "Kommo" received: once, in order, which one was loud.
//
// A *Server is an http.Handler: tests run it in-process with httptest;
// cmd/kommo-sim wraps it in a binary.
package sim
