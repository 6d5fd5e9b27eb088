// Package telegram reads Telegram Desktop's machine-readable JSON export
// (result.json, or the folder holding it and its media) as a source of
// Chats API payloads: --source telegram:PATH.
//
// Both shapes are read: one chat ("Export chat history": name, type, id and
// messages at the top) and the whole account ("Export Telegram data":
// personal_information, contacts.list, chats.list and left_chats.list).
// Only personal chats are imported, each as one Kommo conversation
// (conversation_id "tg-<chat id>", msgid "tg-<chat id>-<message id>", so a
// later export of the same chats re-syncs); group chats, channels, bot
// chats and saved messages are skipped and counted, as are service messages
// (calls, pins, joins) and content Kommo cannot show (polls, games).
//
// Who is the client: in a personal chat the peer (from_id "user<chat id>")
// is the client and the other author, the exporting account, is the
// company; a message without from_id (very old exports) is the client's when
// its author is the chat's name, the company's when --self or --users names
// it. A company message goes out under the author's from_id, or the name,
// whichever --users maps. The client is sent with the Telegram user id, the
// chat's name and the phone number contacts.list gives.
//
// Times are date_unixtime (UTC seconds); an export older than Telegram
// Desktop 3.7.6 has only date, the local time of the exporting machine, read
// in the --tz zone (without --tz the read stops and says so). Edited
// messages keep the time they were sent. Replies become reply_to (a reply to
// a message in another chat is dropped); a forward keeps its text, prefixed
// with "[forwarded from NAME]", since the export has no id of the original
// message that Kommo's forwards could name. Photos and files are the files
// beside result.json (resolved inside the export folder only: a path that
// leads out of it counts as missing); a placeholder such as "(File not
// included. ...)" is media without a file.
//
// The file is read as a stream in bounded memory: a small scanner walks the
// structure and hands each message's bytes to encoding/json, so errors name
// the line and byte offset, a message that does not decode is rejected on
// its own and the next one is read, and a file cut short yields every
// message before the cut. Invalid JSON that versions of Telegram Desktop
// write (\xHH escapes, an unquoted document_id) is repaired first (fix.go).
// Sections in another order than Telegram Desktop writes them (a file
// re-serialized with sorted keys) are read by seeking back; so are the
// chats of an export without contacts.list or personal_information, after
// a pass that finds there are none (a raw scan, a small part of the time
// decoding takes).
//
// Order: Telegram Desktop writes each chat's messages in ascending id order,
// which is the order they were sent. The reader relies on it, and checks it:
// messages up to 1024 places (or 4 MiB) out of id order within a chat are put
// back in order; one further out goes where it stands, which matters only
// for messages sent in the same second as it (the importer orders a chat by
// time, then by the order read).
package telegram
