// Package wire holds the Chats API's ("amojo") message types: the payload of
// a new_message event and its parts, exactly as they go on the wire. It is a
// leaf: the source readers produce these types, the importer stages and
// sends them, and the HTTP client in package chatsapi marshals them, without
// any of those depending on another.
//
// Walk visits every scalar field of a Payload with its JSON path. The
// per-field passes (the UTF-8 check, the duplicate-detection hash, media
// path handling) are written over Walk rather than over the struct by hand,
// so a field added to a type here is seen by all of them, and a test fails
// until Walk visits it.
package wire
