// Package kommoapi is a small client for Kommo's main (CRM) API, v4
// (https://{subdomain}.kommo.com/api/v4/...), authenticated with an
// account's bearer token; the chat channel's signed API ("amojo") is
// package chatsapi. It has the calls the importer needs: the
// account's amojo_id, which connect takes, and the users with their
// amojo_ids, which outgoing messages carry as sender.ref_id.
//
// It authenticates with a long-lived token (Authorization: Bearer), which is
// a signer.Secret: it never appears in an error, a log line or a URL. The
// client talks https only (plain http to a loopback host, for tests and
// rehearsals), never follows redirects (they would carry the token elsewhere)
// and makes one attempt per request: the callers run once, at start-up, where
// a clear error beats a retry loop.
package kommoapi
