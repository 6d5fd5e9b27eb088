// Package whatsapp reads WhatsApp's "Export chat" (--source whatsapp:PATH):
// one chat's .txt, the .zip the app shares (the text and its media), or a
// folder of several of either, each file one conversation, read in the
// order of their paths.
//
// The text has no ids, no time zone and no mark of who exported it, and
// its header changes with the phone (Android "2/4/23, 10:35 PM - Name: ",
// iOS "[31/12/2022 11:40:26] Name: ") and its locale (dates with '.', '/'
// or '-', "klo", "p. m." with a no-break space, U+202F before AM/PM,
// U+200E before generated text). So every chat is read twice. The first
// reading takes the most common header shape as the file's (a line in
// another shape continues the message above it), finds the order of day
// and month from all its dates (as Pustur/whatsapp-chat-parser does; where
// the dates cannot tell, Open asks for --date-order), and its authors: the
// client is the peer the file name names ("WhatsApp Chat with Anna.txt",
// localized), or the one author who is not the company (--self, --users);
// everyone else in a one-to-one chat is the exporting account. A chat
// with more than two authors is a group and is skipped. The second reading
// yields the messages in file order, so equal times keep their order in
// staging, which is the importer's tie-break.
//
// Ids: conversation_id (and the client's id) is "wa-" and a hash of the
// peer's name folded, or of a phone number's digits; msgid hashes the
// conversation, the header's wall clock, the author and the text, with the
// ordinal among identical ones (chatexport.IDs), so a later export of the
// same chat (more messages at the end, fewer at the top where WhatsApp's
// export cap cut them) gives the same messages the same ids.
//
// Media: a file the message names and the export holds becomes the
// message's media as a file: URL (beside a .txt) or a zip: URL read in
// place from the zip (chatexport.ZipURL, OpenLocal); "<Media omitted>",
// "image omitted" and files not found are media without a file, which
// the --media-missing rule decides. Notices WhatsApp writes (end-to-end
// encryption, security codes, calls) are skipped and counted (Skipped).
package whatsapp
