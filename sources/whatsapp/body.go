package whatsapp

import (
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// lrm is U+200E, which iOS writes before the text it generates itself
// (attachments, "image omitted", notices), and Android before some names.
const lrm = "\u200e"

// splitAuthor splits a header's content into the author and the message,
// "Anna: hi" -> ("Anna", "hi"). ok is false for a system line, which has no
// "Name: " ("Messages and calls are end-to-end encrypted. ...").
func splitAuthor(content string) (author, body string, ok bool) {
	i := strings.Index(content, ": ")
	switch {
	case i > 0:
		author, body = content[:i], content[i+2:]
	case strings.HasSuffix(content, ":") && len(content) > 1 && !strings.Contains(content, " :"):
		author = content[:len(content)-1] // "Luke:" with the empty message cut off
	default:
		return "", "", false
	}
	author = cleanName(author)
	if author == "" || len(author) > maxAuthorBytes {
		return "", "", false
	}
	return author, body, true
}

// maxAuthorBytes: a longer "author" is a system line with ": " in it.
const maxAuthorBytes = 120

// cleanName is an author's or peer's name as shown: invisible marks gone
// (U+202A/U+202C wrap phone numbers), NBSP and U+202F as spaces, trimmed.
func cleanName(s string) string {
	if strings.IndexFunc(s, special) < 0 {
		return strings.TrimSpace(s) // the common case: nothing to replace, no copy
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\u200e' || r == '\u200f' || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' || r == '\ufeff':
			continue
		case r == '\u00a0' || r == '\u202f' || r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(b.String())
}

// special reports the runes cleanName drops or replaces.
func special(r rune) bool {
	return r == '\t' || r == '\u00a0' || r == '\ufeff' || r >= '\u200e' && r <= '\u200f' || r >= '\u202a' && r <= '\u202f' || r >= '\u2066' && r <= '\u2069'
}

// phoneRe is an unsaved peer's name: a phone number as WhatsApp writes it.
var phoneRe = regexp.MustCompile(`^\+[0-9][0-9 ()\-]{5,}[0-9]$`)

// isPhone reports whether a cleaned name is a phone number.
func isPhone(name string) bool { return phoneRe.MatchString(name) }

// phoneDigits is "+" and the digits of a phone number.
func phoneDigits(name string) string {
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range name {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// systemRule is a notice WhatsApp writes into a chat (iOS under the chat's
// or a person's name, Android without a name). Strong rules are specific
// enough to trust on any line; the others only on a line starting with
// U+200E, which iOS writes before the notices it generates.
type systemRule struct {
	text   string // folded
	match  int    // matchPrefix, matchExact (the text, or the text and ", 5 min"), matchContains
	strong bool
}

const (
	matchPrefix = iota
	matchExact
	matchContains
)

// systemRules: end-to-end encryption notices, calls, security codes,
// blocking, disappearing messages and business notices, in English,
// Spanish, German, Russian, Portuguese, French and Italian.
var systemRules = []systemRule{
	{"messages and calls are end-to-end encrypted", matchPrefix, true},
	{"messages to this chat and calls are now secured with end-to-end encryption", matchPrefix, true},
	{"messages you send to this chat and calls are now secured with end-to-end encryption", matchPrefix, true},
	{"messages to this group are now secured with end-to-end encryption", matchPrefix, true},
	{"los mensajes y las llamadas están cifrados de extremo a extremo", matchPrefix, true},
	{"los mensajes y llamadas están cifrados de extremo a extremo", matchPrefix, true},
	{"nachrichten und anrufe sind ende-zu-ende-verschlüsselt", matchPrefix, true},
	{"сообщения и звонки защищены сквозным шифрованием", matchPrefix, true},
	{"as mensagens e as chamadas são protegidas com a criptografia de ponta a ponta", matchPrefix, true},
	{"as mensagens e ligações são protegidas com a criptografia de ponta a ponta", matchPrefix, true},
	{"les messages et les appels sont chiffrés de bout en bout", matchPrefix, true},
	{"i messaggi e le chiamate sono crittografati end-to-end", matchPrefix, true},

	{"missed voice call", matchExact, true},
	{"missed video call", matchExact, true},
	{"missed group voice call", matchExact, true},
	{"missed group video call", matchExact, true},
	{"voice call", matchExact, true},
	{"video call", matchExact, true},
	{"llamada perdida", matchExact, true},
	{"llamada de voz perdida", matchExact, true},
	{"videollamada perdida", matchExact, true},
	{"llamada de voz", matchExact, true},
	{"videollamada", matchExact, true},
	{"verpasster sprachanruf", matchExact, true},
	{"verpasster videoanruf", matchExact, true},
	{"sprachanruf", matchExact, true},
	{"videoanruf", matchExact, true},
	{"пропущенный аудиозвонок", matchExact, true},
	{"пропущенный видеозвонок", matchExact, true},
	{"пропущенный голосовой звонок", matchExact, true},
	{"аудиозвонок", matchExact, true},
	{"видеозвонок", matchExact, true},
	{"chamada de voz perdida", matchExact, true},
	{"chamada de vídeo perdida", matchExact, true},
	{"appel vocal manqué", matchExact, true},
	{"appel vidéo manqué", matchExact, true},
	{"chiamata vocale persa", matchExact, true},
	{"videochiamata persa", matchExact, true},

	{"your security code with ", matchPrefix, false},
	{" changed their phone number", matchContains, false},
	{"you blocked this contact", matchPrefix, false},
	{"you unblocked this contact", matchPrefix, false},
	{"this chat is with a business account", matchPrefix, false},
	{"this business uses a secure service from meta", matchPrefix, false},
	{"this business is now using a secure service from meta", matchPrefix, false},
	{"disappearing messages", matchContains, false},
	{"waiting for this message", matchPrefix, false},
	{"tap to learn more", matchContains, false},
	{"tap for more info", matchContains, false},
	{"toca para obtener más información", matchContains, false},
	{"tippe, um mehr zu erfahren", matchContains, false},
	{"нажмите, чтобы узнать", matchContains, false},
	{"toque para saber mais", matchContains, false},
	{"appuyez pour en savoir plus", matchContains, false},
	{"tocca per saperne di più", matchContains, false},
}

// isSystemBody reports whether an authored message is a notice WhatsApp
// wrote (iOS puts them under a name: "[..] Anna: ‎Missed voice call").
func isSystemBody(body string) bool {
	first, _, _ := strings.Cut(body, "\n")
	if !strings.HasPrefix(first, lrm) {
		return matchSystem(strings.TrimSpace(first), false) // compared folded, no copy
	}
	return matchSystem(strings.ToLower(cleanName(first)), true)
}

// matchSystem matches a notice's first line against systemRules: the
// strong ones only, unless the line was marked with U+200E.
func matchSystem(t string, marked bool) bool {
	for i := range systemRules {
		r := &systemRules[i]
		if !r.strong && !marked {
			continue
		}
		switch r.match {
		case matchPrefix:
			if hasPrefixFold(t, r.text) {
				return true
			}
		case matchContains:
			if strings.Contains(t, r.text) { // only marked lines, lowered
				return true
			}
		case matchExact:
			if hasPrefixFold(t, r.text) {
				if rest := t[len(r.text):]; rest == "" || callTail(rest) {
					return true
				}
			}
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix under Unicode case folding, for a
// lower-case prefix whose letters are as long in either case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// callTail is what follows a call notice: ", 5 min", ". 12 min", " • 1:02".
func callTail(rest string) bool {
	if len(rest) > 24 || rest[0] != ',' && rest[0] != '.' && !strings.HasPrefix(rest, " •") && !strings.HasPrefix(rest, " (") {
		return false
	}
	return strings.ContainsAny(rest, "0123456789")
}

// groupWords in a system line mark a group chat ("Anna created group
// "Team"", "You added Bob", "changed the group description"): a Kommo chat
// has one client, so group chats are skipped.
var groupWords = []string{"group", "grupo", "gruppe", "групп", "groupe", "gruppo", "groep"}

func isGroupNotice(text string) bool {
	t := strings.ToLower(text)
	for _, w := range groupWords {
		if strings.Contains(t, w) {
			return true
		}
	}
	return false
}

// isMarkedMedia reports whether a body is a media marker on its own words
// ("<attached: Group photo.jpg>"), whatever the export holds.
func isMarkedMedia(body string) bool {
	m, ok := findMedia(body, func(string) bool { return false })
	return ok && m.marked
}

// media is a media marker found in a message body.
type media struct {
	name    string // the file's name ("" when omitted)
	typ     string // the Kommo message type
	caption string // the text that goes with it
	omitted bool   // the export holds no file ("<Media omitted>", "image omitted")
	marker  string // the omitted marker as written, U+200E dropped
	marked  bool   // the marker says "attached" in a known language, or the name is WhatsApp's own
}

// attachedWords are Android's "(file attached)" and iOS's "<attached: …>"
// in the languages the README lists.
var attachedWords = map[string]bool{
	"file attached": true, "datei angehängt": true, "archivo adjunto": true, "arquivo anexado": true,
	"fichier joint": true, "file allegato": true, "файл прикреплен": true, "файл прикреплён": true,
	"прикрепленный файл": true, "bestand bijgevoegd": true, "dosya ekli": true, "plik załączony": true,
	"attached": true, "anhang": true, "adjunto": true, "anexado": true, "pièce jointe": true,
	"allegato": true, "вложение": true, "bijlage": true, "ek": true, "załącznik": true,
}

// mediaOmitted are Android's "<Media omitted>" in the common languages.
var mediaOmitted = map[string]bool{
	"media omitted": true, "medien ausgeschlossen": true, "medien weggelassen": true, "multimedia omitido": true,
	"archivo omitido": true, "multimedia omitida": true, "mídia oculta": true, "multimédia omitido": true,
	"médias omis": true, "media omessi": true, "без медиафайлов": true, "файл пропущен": true,
	"медиафайл пропущен": true, "media weggelaten": true, "medya dahil edilmedi": true, "pominięto multimedia": true,
	"media dihilangkan": true, "media tidak disertakan": true, "медіа пропущено": true,
}

// omittedKinds and omittedWords make iOS's "image omitted", "Bild
// weggelassen", "imagen omitida", "изображение отсутствует": a media word
// and an omitted word, in either order.
var omittedKinds = map[string]string{
	"image": wire.TypePicture, "imagen": wire.TypePicture, "imagem": wire.TypePicture, "bild": wire.TypePicture,
	"photo": wire.TypePicture, "foto": wire.TypePicture, "immagine": wire.TypePicture, "изображение": wire.TypePicture,
	"фото": wire.TypePicture, "video": wire.TypeVideo, "vídeo": wire.TypeVideo, "vidéo": wire.TypeVideo,
	"видео": wire.TypeVideo, "gif": wire.TypeVideo, "audio": wire.TypeAudio, "áudio": wire.TypeAudio,
	"аудио": wire.TypeAudio, "аудиофайл": wire.TypeAudio, "sticker": wire.TypeSticker, "стикер": wire.TypeSticker,
	"document": wire.TypeFile, "documento": wire.TypeFile, "dokument": wire.TypeFile, "документ": wire.TypeFile,
	"contact card": wire.TypeFile, "kontaktkarte": wire.TypeFile, "tarjeta de contacto": wire.TypeFile,
}

var omittedWords = map[string]bool{
	"omitted": true, "omitida": true, "omitido": true, "weggelassen": true, "отсутствует": true, "пропущено": true,
	"absente": true, "absent": true, "omis": true, "omise": true, "omessa": true, "omesso": true, "ocultada": true,
	"ocultado": true, "oculto": true, "oculta": true, "ausgelassen": true,
}

// waMediaName matches the names WhatsApp gives media files: Android
// "IMG-20220120-WA0010.jpg", "PTT-…", "STK-…"; iOS
// "00000042-PHOTO-2020-06-07-15-13-20.jpg", older "2015-08-04-PHOTO-00004762.jpg".
var waMediaName = regexp.MustCompile(`^(?:[A-Z]{3}-\d{8}-WA\d{4,}|\d{8}-[A-Z]+-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}|\d{4}-\d{2}-\d{2}-[A-Z]+-\d{8})\.\w{1,5}$`)

// maxOmittedBytes is more than the longest omitted marker.
const maxOmittedBytes = 64

// findMedia finds a media marker on the first line of body (U+200E
// stripped): "<file> (file attached)", "<attached: file>", "file
// <attached>", "A PDF.pdf • 1 page <attached: doc.pdf>", "<Media omitted>",
// "image omitted". exists tells whether a file of that name is in the
// export. ok is false for a plain text message.
func findMedia(body string, exists func(string) bool) (m media, ok bool) {
	first, rest, _ := strings.Cut(body, "\n")
	if strings.Contains(first, lrm) {
		first = strings.ReplaceAll(first, lrm, "")
	}
	first = strings.TrimSpace(first)
	rest = strings.TrimRight(rest, "\n")
	m.caption = rest
	// "<Media omitted>", "<image omitted>", "image omitted".
	if len(first) <= maxOmittedBytes || strings.HasSuffix(first, "document omitted") {
		inner := first
		if strings.HasPrefix(inner, "<") && strings.HasSuffix(inner, ">") {
			inner = inner[1 : len(inner)-1]
		}
		folded := strings.ToLower(cleanName(inner))
		if mediaOmitted[folded] {
			return media{typ: wire.TypeFile, omitted: true, marked: true, marker: first, caption: rest}, true
		}
		if typ, ok := omittedKind(folded); ok {
			return media{typ: typ, omitted: true, marked: true, marker: first, caption: rest}, true
		}
	}
	// iOS: "<attached: 00000042-PHOTO-….jpg>", possibly after a title.
	if strings.HasSuffix(first, ">") {
		if i := strings.LastIndex(first, "<"); i >= 0 {
			word, name, found := strings.Cut(first[i+1:len(first)-1], ":")
			name = strings.TrimSpace(name)
			if found && validName(name) {
				title := strings.TrimSpace(first[:i])
				m = media{name: name, caption: joinText(title, rest)}
				m.marked = attachedWords[strings.ToLower(strings.TrimSpace(word))] || waMediaName.MatchString(name)
				if m.marked || exists(name) {
					m.typ = typeOf(name)
					return m, true
				}
			}
			// Older iOS: "2015-08-04-PHOTO-00004762.jpg <attached>".
			if !found && i > 0 {
				name := strings.TrimSpace(first[:i])
				word := strings.ToLower(strings.TrimSpace(first[i+1 : len(first)-1]))
				if validName(name) && (attachedWords[word] || exists(name)) {
					return media{name: name, typ: typeOf(name), caption: rest, marked: attachedWords[word]}, true
				}
			}
		}
	}
	// Android: "IMG-20220120-WA0010.jpg (file attached)"; names may hold spaces.
	if strings.HasSuffix(first, ")") {
		if i := strings.LastIndex(first, " ("); i > 0 {
			name := strings.TrimSpace(first[:i])
			word := strings.ToLower(strings.TrimSpace(first[i+2 : len(first)-1]))
			if validName(name) {
				m = media{name: name, caption: rest, marked: attachedWords[word] || waMediaName.MatchString(name)}
				if m.marked || exists(name) {
					m.typ = typeOf(name)
					return m, true
				}
			}
		}
	}
	return media{}, false
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "\n" + b
}

// omittedKind reads "image omitted" / "Bild weggelassen" /
// "отсутствует изображение" (a media word and an omitted word, either
// first) and iOS's "Title • 3 pages document omitted".
func omittedKind(folded string) (string, bool) {
	i := strings.LastIndex(folded, " ")
	if i < 0 {
		return "", false
	}
	if typ, ok := omittedKinds[folded[:i]]; ok && omittedWords[folded[i+1:]] {
		return typ, true
	}
	j := strings.Index(folded, " ")
	if typ, ok := omittedKinds[folded[j+1:]]; ok && omittedWords[folded[:j]] {
		return typ, true
	}
	if strings.HasSuffix(folded, " document omitted") {
		return wire.TypeFile, true
	}
	return "", false
}

// validName is a file name WhatsApp could have written: a base name with
// an extension, no path.
func validName(name string) bool {
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\\x00<>") || name == "." || name == ".." {
		return false
	}
	ext := path.Ext(name)
	return len(ext) >= 2 && len(ext) <= 6 && !strings.Contains(ext, " ")
}

// typeOf is the Kommo message type of a media file, by its extension (and
// its name, for stickers).
func typeOf(name string) string {
	ext := strings.ToLower(path.Ext(name))
	upper := strings.ToUpper(name)
	switch ext {
	case ".webp":
		if strings.HasPrefix(upper, "STK-") || strings.Contains(upper, "-STICKER-") {
			return wire.TypeSticker
		}
		return wire.TypePicture
	case ".jpg", ".jpeg", ".png", ".gif":
		return wire.TypePicture
	case ".mp4", ".3gp", ".mov", ".m4v", ".webm", ".mkv":
		return wire.TypeVideo
	case ".opus", ".ogg", ".oga":
		return wire.TypeVoice
	case ".mp3", ".m4a", ".aac", ".wav", ".amr", ".flac":
		return wire.TypeAudio
	}
	return wire.TypeFile
}

// locationRe is a shared location: "Location: https://maps.google.com/?q=51.5,-0.09"
// (the word is localized).
var locationRe = regexp.MustCompile(`^[^:\n]{1,30}: https://maps\.google\.com/\?q=(-?\d{1,3}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)$`)

// findLocation reads a shared location; ok is false otherwise.
func findLocation(body string) (loc wire.Location, ok bool) {
	if !strings.Contains(body, "https://maps.google.com/?q=") {
		return loc, false
	}
	m := locationRe.FindStringSubmatch(strings.TrimSpace(strings.ReplaceAll(body, lrm, "")))
	if m == nil {
		return loc, false
	}
	lat, err1 := strconv.ParseFloat(m[1], 64)
	lon, err2 := strconv.ParseFloat(m[2], 64)
	if err1 != nil || err2 != nil || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return loc, false
	}
	return wire.Location{Lat: lat, Lon: lon}, true
}
