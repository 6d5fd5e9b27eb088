// Package meta reads Meta's "Download your information" exports in JSON
// format as a source: Facebook Messenger (--source messenger:PATH) and
// Instagram direct messages (--source instagram:PATH), from the unzipped
// folder or its .zip, in every layout Meta has used (your_facebook_activity/,
// your_activity_across_facebook/, your_instagram_activity/, the older
// messages/ at the top, Instagram's 2018-2020 single messages.json) and the
// Messenger end-to-end-encrypted export's flat <Name>_<N>.json files.
//
// Each one-to-one thread is one conversation: the folder owner (or a --self
// name, or a --users agent) is the company, the other participant the
// client. A thread's message_N.json files are merged and its messages yielded
// oldest first, one thread in memory at a time. Meta's mojibake (UTF-8 bytes
// written as \u00XX code points) is repaired in every text. Group threads,
// system messages, calls and unsent messages are skipped and counted
// (Decoder.Skipped), as is a thread whose JSON is damaged; the others go on.
package meta
