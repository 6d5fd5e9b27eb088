package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/wire"
)

func TestSplitAuthor(t *testing.T) {
	for _, tc := range []struct{ content, author, body string }{
		{"Anna Schmidt: hi: there", "Anna Schmidt", "hi: there"},
		{"\u202a+49 151 23456789\u202c: Hallo", "+49 151 23456789", "Hallo"},
		{"Luke: ", "Luke", ""},
		{"Luke:", "Luke", ""},
		{"Ann\u00a0Lee: x", "Ann Lee", "x"},
	} {
		a, b, ok := splitAuthor(tc.content)
		require.True(t, ok, tc.content)
		require.Equal(t, tc.author, a)
		require.Equal(t, tc.body, b)
	}
	for _, system := range []string{
		"Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
		"You created group \"Family\"",
		": no author",
		"",
	} {
		_, _, ok := splitAuthor(system)
		require.False(t, ok, system)
	}
}

func TestSystemBodies(t *testing.T) {
	for _, body := range []string{
		"\u200eMessages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.",
		"Messages and calls are end-to-end encrypted. Only people in this chat can read, listen to, or share them.",
		"\u200eMissed voice call",
		"Missed video call",
		"\u200eVoice call, \u200e12 min",
		"Video call. 1:02",
		"\u200eYour security code with Anna changed. Tap to learn more.",
		"\u200ePerson 2 changed their phone number to a new number. Tap to message or add the new number.",
		"\u200eYou blocked this contact. Tap to unblock.",
		"\u200eПропущенный аудиозвонок",
		"Сообщения и звонки защищены сквозным шифрованием.",
		"\u200eLlamada perdida",
		"Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt.",
		"\u200eThis business uses a secure service from Meta to manage this chat. Tap to learn more.",
	} {
		require.True(t, isSystemBody(body), "%q", body)
	}
	for _, body := range []string{
		"Hello",
		"Voice call me later please",
		"video call tomorrow at 5?",
		"tap to learn more about our sofas", // without U+200E a person wrote it
		"This message was deleted",
		"You deleted this message",
		"Sure <This message was edited>",
	} {
		require.False(t, isSystemBody(body), "%q", body)
	}
}

func TestFindMedia(t *testing.T) {
	present := map[string]bool{"Price list 2023.pdf": true, "photo.heic": true, "notes.txt": true}
	exists := func(n string) bool { return present[n] }
	for _, tc := range []struct {
		name, body string
		want       media
	}{
		{"android attached with caption", "IMG-20220120-WA0010.jpg (file attached)\nHere it is", media{name: "IMG-20220120-WA0010.jpg", typ: wire.TypePicture, caption: "Here it is", marked: true}},
		{"android german", "\u200e4f2680f1db95a8454775cc2eefc95bfc.jpg (Datei angehängt)\nDir auch frohe Ostern.", media{name: "4f2680f1db95a8454775cc2eefc95bfc.jpg", typ: wire.TypePicture, caption: "Dir auch frohe Ostern.", marked: true}},
		{"android name with spaces, present", "Price list 2023.pdf (file attached)", media{name: "Price list 2023.pdf", typ: wire.TypeFile, marked: true}},
		{"unknown language, WhatsApp's name", "PTT-20230204-WA0001.opus (fichier joint inconnu)", media{name: "PTT-20230204-WA0001.opus", typ: wire.TypeVoice, marked: true}},
		{"unknown language, file present", "photo.heic (xyz)", media{name: "photo.heic", typ: wire.TypeFile}},
		{"ios attached", "\u200e<attached: 00000042-PHOTO-2020-06-07-15-13-20.jpg>", media{name: "00000042-PHOTO-2020-06-07-15-13-20.jpg", typ: wire.TypePicture, marked: true}},
		{"ios spaced", "< attached: 00000042-PHOTO-2020-06-07-15-13-20.jpg >", media{name: "00000042-PHOTO-2020-06-07-15-13-20.jpg", typ: wire.TypePicture, marked: true}},
		{"ios spanish", "\u200e<adjunto: 00000005-AUDIO-2022-12-31-11-43-55.opus>", media{name: "00000005-AUDIO-2022-12-31-11-43-55.opus", typ: wire.TypeVoice, marked: true}},
		{"ios document title", "Catalog Winter.pdf • \u200e3 pages \u200e<attached: 00000006-Catalog Winter.pdf>", media{name: "00000006-Catalog Winter.pdf", typ: wire.TypeFile, caption: "Catalog Winter.pdf • 3 pages", marked: true}},
		{"ios older", "2015-08-04-PHOTO-00004762.jpg <\u200eattached>", media{name: "2015-08-04-PHOTO-00004762.jpg", typ: wire.TypePicture, marked: true}},
		{"ios sticker", "<attached: 00000007-STICKER-2022-12-31-11-48-00.webp>", media{name: "00000007-STICKER-2022-12-31-11-48-00.webp", typ: wire.TypeSticker, marked: true}},
		{"android sticker", "STK-20230101-WA0001.webp (file attached)", media{name: "STK-20230101-WA0001.webp", typ: wire.TypeSticker, marked: true}},
		{"media omitted", "<Media omitted>", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "<Media omitted>"}},
		{"media omitted russian", "<без медиафайлов>", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "<без медиафайлов>"}},
		{"media omitted german", "<Medien ausgeschlossen>", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "<Medien ausgeschlossen>"}},
		{"media omitted spanish", "<Multimedia omitido>", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "<Multimedia omitido>"}},
		{"image omitted", "\u200eimage omitted", media{typ: wire.TypePicture, omitted: true, marked: true, marker: "image omitted"}},
		{"GIF omitted in <>", "<GIF omitted>", media{typ: wire.TypeVideo, omitted: true, marked: true, marker: "<GIF omitted>"}},
		{"Bild weggelassen", "Bild weggelassen", media{typ: wire.TypePicture, omitted: true, marked: true, marker: "Bild weggelassen"}},
		{"contact card omitted", "\u200eContact card omitted", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "Contact card omitted"}},
		{"document omitted with title", "Offer.pdf • \u200e2 pages \u200edocument omitted", media{typ: wire.TypeFile, omitted: true, marked: true, marker: "Offer.pdf • 2 pages document omitted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := findMedia(tc.body, exists)
			require.True(t, ok)
			require.Equal(t, tc.want, got)
		})
	}
	for _, text := range []string{
		"see you (tomorrow)",
		"the file is report.pdf (sent yesterday)",
		"<b>bold</b>",
		"I'll call you <later: ok>",
		"../../etc/passwd (file attached)",
		"image of the sofa omitted? no",
	} {
		_, ok := findMedia(text, exists)
		require.False(t, ok, text)
	}
}

func TestTypeOf(t *testing.T) {
	for name, want := range map[string]string{
		"IMG-1.jpg": wire.TypePicture, "a.JPEG": wire.TypePicture, "x.png": wire.TypePicture, "y.webp": wire.TypePicture,
		"STK-20230101-WA0001.webp": wire.TypeSticker, "00000007-STICKER-2022-12-31-11-48-00.webp": wire.TypeSticker,
		"VID-1.mp4": wire.TypeVideo, "PTT-1.opus": wire.TypeVoice, "a.ogg": wire.TypeVoice,
		"AUD-1.mp3": wire.TypeAudio, "b.m4a": wire.TypeAudio, "doc.pdf": wire.TypeFile, "card.vcf": wire.TypeFile,
	} {
		require.Equal(t, want, typeOf(name), name)
	}
}

func TestFindLocation(t *testing.T) {
	loc, ok := findLocation("location: https://maps.google.com/?q=40.748817,-73.985428")
	require.True(t, ok)
	require.Equal(t, wire.Location{Lat: 40.748817, Lon: -73.985428}, loc)
	_, ok = findLocation("Standort: https://maps.google.com/?q=53.551086,9.993682")
	require.True(t, ok)
	for _, text := range []string{
		"location: https://maps.google.com/?q=140.0,10.0",
		"see https://maps.google.com/?q=1,2 and come",
		"Location: https://maps.google.com/?q=1,2\nsecond line",
	} {
		_, ok := findLocation(text)
		require.False(t, ok, text)
	}
}

func TestPeerFromName(t *testing.T) {
	for name, want := range map[string]string{
		"WhatsApp Chat with Anna Schmidt.txt":      "Anna Schmidt",
		"WhatsApp_Chat_with_Anna_Schmidt.txt":      "Anna Schmidt",
		"WhatsApp Chat with Anna Schmidt (1).txt":  "Anna Schmidt",
		"WhatsApp Chat - Olivia Brown.zip":         "Olivia Brown",
		"WhatsApp Chat - +49 151 23456789.zip":     "+49 151 23456789",
		"Чат WhatsApp с Иван Петров.txt":           "Иван Петров",
		"Chat de WhatsApp con Lucía Fernández.txt": "Lucía Fernández",
		"WhatsApp Chat mit Jonas Weber.txt":        "Jonas Weber",
		"whatsapp chat with bob.TXT":               "bob",
		"_chat.txt":                                "",
		"export.txt":                               "",
	} {
		require.Equal(t, want, peerFromName(name), name)
	}
}

func TestNameKey(t *testing.T) {
	require.Equal(t, nameKey("+49 151 23456789"), nameKey("\u202a+49 (151) 234-567-89\u202c"), "a phone number by its digits")
	require.Equal(t, nameKey("Anna  SCHMIDT"), nameKey("anna\u00a0schmidt"))
	require.NotEqual(t, nameKey("Anna"), nameKey("Anne"))
}
