// Package chatsapi is a client for the Kommo Chats API ("amojo"): send a
// new_message, create a chat, page a chat's history and connect a channel.
//
// Every attempt is signed afresh with package signer and waits on the shared
// rate limiter first. Errors are *Error values classified in one place
// (Classify): retryable, in doubt, permanent, rate limited, bad signature or
// account blocked. The client makes one HTTP attempt per call; retry policy
// belongs to the caller, which knows what a repeated request would cost.
package chatsapi
