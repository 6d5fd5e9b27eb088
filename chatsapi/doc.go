// Package chatsapi is a client for the Kommo Chats API ("amojo"): send a
// new_message, create a chat, page a chat's history and connect a channel.
//
// Every attempt waits on the shared rate limiter first, then is signed afresh
// with package signer (a new Date each time) over the exact body bytes it
// sends. The client makes one HTTP attempt per call and never follows
// redirects; retry policy belongs to the caller, which knows what a repeated
// request would cost.
//
// Every failure is an *Error, classified in one place (classify in
// errors.go) into a Kind: permanent, retryable, rate limited, bad signature
// or blocked. InDoubt says whether the API may have acted on the request
// (a 5xx, an unusable 2xx, or a timeout, broken connection or cancellation
// after the request was written); an in-doubt send should be looked up with
// History (HistoryBody.ClientID is our msgid) before it is sent again.
//
// The server is not trusted: Timeout bounds a whole attempt (connect, TLS,
// request, headers, body), so silence or a trickle ends as a retryable
// timeout; at most MaxResponseBytes of a body is read; HTML or garbage where
// JSON belongs is classified by status alone, and Error() shows it as a short
// printable snippet; RetryAfter is capped at MaxRetryAfter. Certificates are
// always verified (see Config.HTTPClient). Nothing of a failed attempt
// outlives it: the attempt's context tears its connection down.
//
// Instrumentation wraps the client's own transport (Config.WrapTransport)
// rather than replacing it, so those limits hold with metrics on; Endpoint
// names a request's call for a label.
package chatsapi
