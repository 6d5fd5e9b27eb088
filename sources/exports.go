package sources

import (
	"maps"
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// The kinds of messenger exports, each read by a package of its own
// (sources/telegram, sources/whatsapp, sources/meta) through NewReader.
const (
	KindTelegram  = "telegram"  // Telegram Desktop's result.json, or the folder holding it
	KindWhatsApp  = "whatsapp"  // WhatsApp's "Export chat" .txt or .zip, or a folder of them
	KindMessenger = "messenger" // Facebook's "Download your information" folder (JSON) or .zip
	KindInstagram = "instagram" // Instagram's "Download your information" folder (JSON) or .zip
)

// ExportKinds are the messenger export kinds, in documentation order.
var ExportKinds = []string{KindTelegram, KindWhatsApp, KindMessenger, KindInstagram}

// IsExportKind reports whether kind is one of ExportKinds.
func IsExportKind(kind string) bool {
	for _, k := range ExportKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Reasons an export's content is not imported as it stands, the keys of
// Stats.Skipped. A format may add its own; each key says what it counts.
const (
	// Chats skipped whole (counted once per chat; their messages count under
	// SkipChatMessage): a Kommo chat is one client talking to the company.
	SkipGroupChat     = "group chat"
	SkipChannel       = "channel"
	SkipBotChat       = "bot chat"
	SkipSavedMessages = "saved messages" // the account's notes to itself
	SkipOtherChat     = "other chat"     // a chat of a type the format does not know
	// SkipChatMessage counts the messages of the chats skipped whole.
	SkipChatMessage = "message in a skipped chat"
	// SkipServiceMessage: joins, pins, calls, "messages are end-to-end
	// encrypted" and other lines the app wrote, not a person.
	SkipServiceMessage = "service message"
	// SkipUnsupported: a message with nothing Kommo can show (a poll, a
	// game, an empty message, a type the format marks unsupported).
	SkipUnsupported = "unsupported content"
	// SkipMediaWithoutFile: a media message whose file the export does not
	// hold (left out, too big, missing on disk). It follows
	// Spec.MediaMissing: rejected, or sent as text. Counted by the Reader for
	// every format.
	SkipMediaWithoutFile = "media without a file"
	// SkipMediaNotHosted: a media message whose file is on this machine
	// (message.media is a file: URL), sent as text naming the file because
	// local files cannot be hosted yet (Spec.MediaHosted false). Counted by
	// the Reader.
	SkipMediaNotHosted = "media file not hosted (sent as text)"
)

// skipCounter is a decoder that counts what it skipped (see Stats.Skipped):
// the Reader asks for it in Stats.
type skipCounter interface {
	// Skipped returns the counts so far by reason; the Reader copies it.
	Skipped() map[string]int64
}

// skip counts one record under reason.
func (r *Reader) skip(reason string) {
	if r.skipped == nil {
		r.skipped = map[string]int64{}
	}
	r.skipped[reason]++
}

// skippedStats merges the decoder's counts with the Reader's own into a new
// map; nil when there are none.
func (r *Reader) skippedStats() map[string]int64 {
	var dec map[string]int64
	if sc, ok := r.dec.(skipCounter); ok {
		dec = sc.Skipped()
	}
	if len(dec) == 0 && len(r.skipped) == 0 {
		return nil
	}
	out := make(map[string]int64, len(dec)+len(r.skipped))
	maps.Copy(out, dec)
	for k, v := range r.skipped {
		out[k] += v
	}
	return out
}

// localMedia applies the media rules that come before validation: a local
// file (a file: URL) while files cannot be hosted becomes the text that names
// it; a media message without a file is counted and, with --media-missing
// text, becomes that text too (else Validate rejects it). The message's
// file_name, file_size and type stay as the decoder gave them in every other
// case, for the hosting step.
func (r *Reader) localMedia(m *wire.Message) {
	if m == nil {
		return
	}
	if !r.mediaHosted && isFileURL(m.Media) {
		r.skip(SkipMediaNotHosted)
		mediaToText(m)
		return
	}
	if mediaMissing(m) {
		r.skip(SkipMediaWithoutFile)
		if r.mediaText {
			mediaToText(m)
		}
	}
}

// isFileURL reports a local file as a payload holds it until it is hosted:
// a file: URL (chatexport.FileURL) or a zip: URL of a file inside an
// archive (chatexport.ZipURL), in any case.
func isFileURL(s string) bool {
	return len(s) >= 5 && strings.EqualFold(s[:5], "file:") || len(s) >= 4 && strings.EqualFold(s[:4], "zip:")
}
