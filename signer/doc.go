// Package signer signs and verifies Kommo Chats API ("amojo") requests.
//
// Every amojo request carries four headers: Date (RFC 2822, "+0000" form),
// Content-Type (always application/json), Content-MD5 (lowercase hex MD5 of
// the exact body bytes) and X-Signature (lowercase hex HMAC-SHA1, keyed with
// the channel secret, over METHOD, Content-MD5, Content-Type, Date and the URL
// path joined by "\n"). The functions here are pure: the time is a parameter,
// so the same inputs always give the same headers and tests can pin vectors.
package signer
