// Package chatsapi is a client for the Kommo Chats API, "amojo"
// (https://amojo.kommo.com/v2/origin/custom/...): the HMAC-signed API of a
// chat channel, which sends a new_message, creates a chat, pages a chat's
// history and connects a channel. Kommo's main (CRM) API, /api/v4 on the
// account's own domain with a bearer token, is package kommoapi. The message
// types it sends are package wire's.
//
// Every attempt is signed afresh with package signer (a new Date each time)
// over the exact body bytes it sends. The client makes one HTTP attempt per
// call, never paces itself and never follows redirects: pacing and retry
// policy belong to the caller (the importer's one paced attempt), which
// knows the scope's rate and what a repeated request would cost.
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
