// Package kommoapi is a small client for Kommo's main (CRM) API, v4
// (https://{subdomain}.kommo.com/api/v4/...), authenticated with an
// account's bearer token; the chat channel's signed API ("amojo") is
// package chatsapi. It has the calls the importer needs: the account's
// amojo_id, which connect takes; the users with their amojo_ids, which
// outgoing messages carry as sender.ref_id; and the contact search, contact
// creation and chat links that put imported chats on the clients' existing
// contacts (package contacts).
//
// It authenticates with a long-lived token (Authorization: Bearer), which is
// a signer.Secret: it never appears in an error, a log line or a URL. The
// client talks https only (plain http to a loopback host, for tests and
// rehearsals), never follows redirects (they would carry the token elsewhere)
// and makes one attempt per call: the caller paces the calls (the main API
// has a rate limit of its own) and decides on retries, told by the *Error
// whether a call is retryable, rate limited (RetryAfter) or in doubt (a POST
// that may have been carried out).
package kommoapi
