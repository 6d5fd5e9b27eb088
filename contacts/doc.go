// Package contacts puts imported chats on the clients' existing Kommo
// contacts, the way Kommo's own import recipe does: create the chat, find
// the client's contact (or create one), link the chat to it, then send every
// message silently, so no incoming (unsorted) lead and no duplicate contact
// is made for a client the account already has.
//
// Kommo has no exact phone or e-mail look-up, only a loose search over every
// field (GET /api/v4/contacts?query=: a query finds values that merely
// contain it; phones are matched as written). A Matcher searches by the
// client's phone (its national significant number, which finds "+7 916...",
// "8 (916)..." and "916..." alike) and e-mail, and keeps only the hits whose
// PHONE value is the same number in E.164 (written without a country code,
// read in --default-region) or whose EMAIL value is the same address, case
// aside. Exactly one such contact: link. None: create one (--create-contacts)
// or leave the chat unlinked. Several: ambiguous, listed for the operator to
// settle in a --contacts-map file, which wins over the search.
//
// Every request goes through the caller's Attempt (the importer's paced
// attempt: a slot of the main API's own rate schedule, then one call), and
// searches are cached for the Matcher's life, so a client with ten chats
// costs one search. Plan runs the matching over a whole export and writes
// the plan CSV, reading the account and writing nothing to it.
package contacts
