package meta

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

const samples = "../../testdata/"

// sampleUsers maps the samples' owners to Kommo users, as an operator's
// --users file would.
func sampleUsers(t *testing.T) *sources.UserMap {
	t.Helper()
	users := sources.NewUserMap()
	for name, id := range map[string]string{"Mária Kovács": "amojo-maria", "Kovács Shop": "amojo-shop", "kovacs.shop": "amojo-shop"} {
		require.NoError(t, users.AddAgent(name, id))
	}
	return users
}

func sampleSpec(t *testing.T, kind, dir string) sources.Spec {
	return sources.Spec{Kind: kind, Path: samples + dir, Users: sampleUsers(t), MediaMissing: sources.MediaMissingText}
}

// The 2025 Messenger sample: a thread split over message_1/message_2 with
// ties at the file boundary, mojibake in every name and text, a message
// request, an archived thread titled with a nickname, a deleted account, a
// group, a cut-off thread, shares, calls, unsent messages, reactions and
// media present and missing.
func TestMessenger2025Sample(t *testing.T) {
	res := readAll(t, sampleSpec(t, KindMessenger, "messenger/2025"))
	require.Equal(t, []string{
		`fb-10158666666666666 out Mária Kovács: "Dobrý den, vaše zásilka je připravena k vyzvednutí."`,
		`fb-10158666666666666 in  Petr Novák: "Díky, zítra si ji vyzvednu."`,
		`fb-10158123456789012 in  Anna Müller: "Dobrý den! Mám dotaz k objednávce č. 1042 😊"`,
		`fb-10158123456789012 in  Anna Müller: "první"`,
		`fb-10158123456789012 in  Anna Müller: "druhá"`,
		`fb-10158123456789012 out Mária Kovács: "Dobrý den, Anno. Podívám se na to."`,
		`fb-10158123456789012 in  Anna Müller: "[picture: 431234567_1234567890_n_431234567.jpg]"`,
		`fb-10158123456789012 in  Anna Müller: "[voice: audioclip17092843100001234_1234567890.mp4]"`,
		`fb-10158123456789012 in  Anna Müller: "třetí (stejný čas jako další soubor)"`,
		`fb-10158123456789012 in  Anna Müller: "čtvrtá (stejný čas, novější soubor)"`,
		`fb-10158123456789012 out Mária Kovács: "Tady je odkaz na slevu: https://www.example.cz/sleva?utm=fb\nJarní sleva 20 %" +shared https://www.example.cz/sleva?utm=fb`,
		`fb-10158123456789012 in  Anna Müller: "[video: 1234_missing_video.mp4]"`,
		`fb-10158123456789012 out Mária Kovács: "[picture: thanks_1234.gif]"`,
		`fb-10158123456789012 in  Anna Müller: "[sticker: 39178562_1505197616293642_5411344281094848512_n.png]"`,
		`fb-10158123456789012 in  Anna Müller: "Děkuji! 👍"`,
		`fb-10158123456789012 out Mária Kovács: "[file: faktura_1042.pdf]"`,
		`fb-10158123456789012 in  Anna Müller: "[picture: 431299999_2222222222_n_431299999.jpg]"`,
		`fb-10158123456789012 in  Anna Müller: "[picture: 431288888_missing_n.jpg]"`,
		`fb-10158123456789012 in  Anna Müller: "Píšete „zítra“ – to je v pátek? 🤔"`,
		`fb-10158123456789012 out Mária Kovács: "Ano, v pátek. Rádo se stalo, hezký den! 🌷"`,
		`fb-10158555555555555 in  Facebook user: "Máte otevřeno i v sobotu?"`,
		`fb-10158555555555555 out Mária Kovács: "Ano, 9–12 h."`,
		`fb-10158222222222222 in  Олег Петров: "Здравствуйте! Сколько стоит доставка в Брно?"`,
		`fb-10158222222222222 out Mária Kovács: "Dobrý den, doprava do Brna je zdarma."`,
		`fb-10158222222222222 in  Олег Петров: "Спасибо 🙏"`,
	}, briefs(res))
	require.Equal(t, map[string]int64{SkipCall: 2, SkipDamagedChat: 1, SkipGroupChat: 1, SkipChatMessage: 2,
		SkipOddFile: 1, SkipReaction: 2, SkipServiceMessage: 1, SkipUnsent: 1}, res.skipped)
	require.Len(t, res.errs, 2)
	require.Equal(t, samples+"messenger/2025:3: your_facebook_activity/messages/filtered_threads/spammer_10158444444444444/message_1.json "+
		`line 15 (offset 241): invalid character '\n' in string literal: the thread is skipped`, res.errs[0].Error())
	require.Equal(t, samples+"messenger/2025:4: timestamp_ms: your_facebook_activity/messages/inbox/annamuller_10158123456789012/message_1.json "+
		"line 65 (offset 1943, messages[5]): a JSON string where the export has a number", res.errs[1].Error())
	require.Contains(t, string(res.errs[1].Raw), `"timestamp_ms": "1709284800000"`, "the rejected message's own JSON")
	require.EqualValues(t, 4, res.stats.Conversations)

	// Outgoing messages go under the owner's Kommo user and to the client.
	var out *wire.Payload
	for i := range res.recs {
		if p := &res.recs[i].Payload; p.Receiver != nil && out == nil {
			out = p
		}
	}
	require.Equal(t, "amojo-maria", out.Sender.RefID)
	require.Equal(t, &wire.Participant{ID: "fb-user-10158666666666666", Name: "Petr Novák"}, out.Receiver)
	// A file present in the export leaves the decoder as its file: URL with
	// its name and size (for hosting; the Reader sends it as text until then);
	// a missing one with its name only.
	var files, missing int
	for _, r := range decodeAll(t, sampleSpec(t, KindMessenger, "messenger/2025")) {
		if msg := r.p.Message; r.err == nil && msg.Type == wire.TypeFile {
			files++
			require.True(t, strings.HasPrefix(msg.Media, "file:///"), msg.Media)
			require.True(t, strings.HasSuffix(msg.Media, "/inbox/annamuller_10158123456789012/files/faktura_1042.pdf"), msg.Media)
			require.Equal(t, "faktura_1042.pdf", msg.FileName)
			require.EqualValues(t, 45, msg.FileSize)
		}
		if msg := r.p.Message; r.err == nil && msg.Type == wire.TypeVideo {
			missing++
			require.Equal(t, &wire.Message{Type: wire.TypeVideo, FileName: "1234_missing_video.mp4"}, msg)
		}
	}
	require.Equal(t, 1, files)
	require.Equal(t, 1, missing)
}

func TestMessengerPre2024Sample(t *testing.T) {
	res := readAll(t, sampleSpec(t, KindMessenger, "messenger/pre2024"))
	require.Equal(t, []string{
		`fb-a1b2c3d4e5 in  Anna Müller: "Ahoj, máte ještě ty modré hrnky?"`,
		`fb-a1b2c3d4e5 out Mária Kovács: "[picture: hrnky_modre.jpg]"`,
		`fb-a1b2c3d4e5 in  Anna Müller: "Super, beru dva ☕☕"`,
		`fb-f6g7h8i9j0 in  Tomáš Bílý: "Veselé Vánoce! 🎄"`,
	}, briefs(res))
	require.Empty(t, res.errs)
	require.Empty(t, res.skipped)
}

func TestMessengerE2EESample(t *testing.T) {
	res := readAll(t, sampleSpec(t, KindMessenger, "messenger/e2ee"))
	require.Equal(t, []string{
		`fb-e2ee-Anna Müller_1 in  Anna Müller: "Dobrý den, posílám fotku reklamace."`,
		`fb-e2ee-Anna Müller_1 in  Anna Müller: "[picture: 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b.jpeg]"`,
		`fb-e2ee-Anna Müller_1 in  Anna Müller: "[video: missing-0000.mp4] a video"`,
		`fb-e2ee-Anna Müller_1 out Mária Kovács: "Děkujeme, reklamaci jsme přijali – číslo R-2025-017."`,
	}, briefs(res))
	require.Equal(t, []string{samples + "messenger/e2ee:4: media[0].uri: Anna Müller_1.json line 57 (offset 1342, messages[4]): a path leading out of the export (..)"},
		errTexts(res), "a media path out of the export rejects its record; the settings file is no thread and no error")
	require.Equal(t, map[string]int64{SkipGroupChat: 1, SkipChatMessage: 1, SkipReaction: 1, SkipUnsent: 1}, res.skipped)
}

func TestInstagram2025Sample(t *testing.T) {
	res := readAll(t, sampleSpec(t, KindInstagram, "instagram/2025"))
	require.Equal(t, []string{
		`ig-17841400000000001 in  Anna Müller: "Nová kolekce 🌸 #jaro\nhttps://www.instagram.com/p/C3xYz12AbCd/" +shared https://www.instagram.com/p/C3xYz12AbCd/`,
		`ig-17841400000000001 in  Anna Müller: "Je tahle mikina i ve velikosti M? 😍"`,
		`ig-17841400000000001 out Kovács Shop: "Ano, M i L máme skladem."`,
		`ig-17841400000000001 in  Anna Müller: "[voice: aud_17841400000000001_1.mp4]"`,
		`ig-17841400000000001 in  Anna Müller: "[picture: 479000001_1234567890_n.jpg]"`,
		`ig-17841400000000001 out Kovács Shop: "Liked a message"`,
		`ig-17841400000000001 out Kovács Shop: "Objednávku jsme odeslali, děkujeme! ✨"`,
		`ig-17841400000000002 in  José Ramírez: "¿Hacen envíos a España? 🇪🇸"`,
	}, briefs(res))
	require.Empty(t, res.errs)
	require.Equal(t, map[string]int64{SkipUnsupported: 1, SkipGroupChat: 1, SkipChatMessage: 1, SkipReaction: 1, SkipUnsent: 1}, res.skipped)
}

func TestInstagram2019Sample(t *testing.T) {
	res := readAll(t, sampleSpec(t, KindInstagram, "instagram/2019"))
	require.Equal(t, []string{
		`ig-dm-anna.mueller+kovacs.shop in  anna.mueller: "Dobrý den, kdy budete mít zase otevřeno?"`,
		`ig-dm-anna.mueller+kovacs.shop out kovacs.shop: "Od pondělí, 9–17 h."`,
		`ig-dm-anna.mueller+kovacs.shop in  anna.mueller: "Nová kolekce!\nhttps://scontent.cdninstagram.com/v/t51.2885-15/e35/59000000_n.jpg"`,
		`ig-dm-anna.mueller+kovacs.shop in  anna.mueller: "❤️"`,
		`ig-dm-anna.mueller+kovacs.shop in  anna.mueller: "[picture: 60000000_n.jpg]"`,
		`ig-dm-kovacs.shop+tomas.bily in  tomas.bily: "Díky za rychlé doručení 👍"`,
	}, briefs(res))
	require.Empty(t, res.errs)
	require.Equal(t, map[string]int64{SkipGroupChat: 1, SkipChatMessage: 1, SkipReaction: 1}, res.skipped)
}

// Without --self or --users the owner comes from the export alone: the
// participant who is not the title of a one-to-one thread, learned there and
// applied to the thread whose title is a nickname (read again at the end).
func TestOwnerFromTheExportAlone(t *testing.T) {
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: samples + "messenger/2025", MediaMissing: sources.MediaMissingText})
	var dirs []string
	for _, r := range res.recs {
		if r.Payload.ConversationID == "fb-10158666666666666" {
			dirs = append(dirs, brief(&r.Payload))
		}
	}
	require.Equal(t, []string{`fb-10158666666666666 in  Petr Novák: "Díky, zítra si ji vyzvednu."`}, dirs,
		"the nickname thread is read after the others, its owner learned from them")
	var unmatched int
	for _, e := range res.errs {
		if e.Field == "sender.ref_id" {
			unmatched++
		}
	}
	require.Equal(t, 8, unmatched, "the owner's messages are outgoing: without --users or --bot-id they are rejected")
}
