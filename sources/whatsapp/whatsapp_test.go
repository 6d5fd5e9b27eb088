package whatsapp

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
	"github.com/kommo-import/kommo-import/wire"
)

// samples is the repository's testdata/whatsapp.
const samples = "../../testdata/whatsapp/"

var now = func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

// spec reads path in Europe/Berlin, with the company's messages sent as the
// bot and media without a file as text, as an operator would start.
func spec(t *testing.T, path string) sources.Spec {
	users := sources.NewUserMap()
	users.SetBotID("bot-1")
	// MediaHosted: the samples' tests check what the reader itself yields
	// (media as file: and zip: URLs); TestZipMediaNotHostedBecomesText the rule.
	return sources.Spec{Kind: Kind, Path: path, Location: zone(t, "Europe/Berlin"), Users: users,
		MediaMissing: sources.MediaMissingText, Now: now, MediaHosted: true}
}

// result is everything a source yielded.
type result struct {
	recs    []sources.Record
	errs    []*sources.LineError
	skipped map[string]int64
	stats   sources.Stats
}

func read(t *testing.T, s sources.Spec) result {
	t.Helper()
	d, err := openDecoder(t.Context(), s)
	require.NoError(t, err)
	r := sources.NewReader(s, s.Path, d, true)
	defer r.Close()
	var res result
	for {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			res.errs = append(res.errs, le)
			continue
		}
		require.NoError(t, err)
		res.recs = append(res.recs, rec)
	}
	res.skipped, res.stats = d.Skipped(), r.Stats()
	return res
}

// brief is a record in one line: its line, direction, local time, type and
// text or file.
func brief(rec sources.Record, loc *time.Location) string {
	p := rec.Payload
	dir := "in "
	if p.Receiver != nil {
		dir = "out"
	}
	what := p.Message.Text
	switch {
	case p.Message.Location != nil:
		what = fmt.Sprintf("%v,%v", p.Message.Location.Lat, p.Message.Location.Lon)
	case p.Message.Media != "":
		what = fmt.Sprintf("%s %d %s", p.Message.FileName, p.Message.FileSize, p.Message.Text)
	}
	return fmt.Sprintf("%d %s %s %s %s", rec.Line, dir, time.UnixMilli(p.MsecTimestamp).In(loc).Format("2006-01-02 15:04:05"), p.Message.Type, strings.TrimSpace(what))
}

func briefs(res result, loc *time.Location) []string {
	var out []string
	for _, r := range res.recs {
		out = append(out, brief(r, loc))
	}
	return out
}

func TestAndroid12hSample(t *testing.T) {
	s := spec(t, samples+"android-12h/WhatsApp Chat with Anna Schmidt.txt")
	s.Location = zone(t, "America/New_York")
	res := read(t, s)
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"2 in  2023-02-03 22:01:00 text Hi! Is the blue sofa still available?",
		"3 in  2023-02-03 22:01:00 text The one from your Instagram post",
		"4 out 2023-02-03 22:04:00 text Hello Anna, yes it is 😊\nIt comes in two sizes:\n- 2 seats: $899\n\n- 3 seats: $1,199",
		"9 out 2023-02-03 22:05:00 picture IMG-20230203-WA0004.jpg 2048 Here it is in our showroom",
		"11 in  2023-02-03 22:07:00 text [file]",
		"12 in  2023-02-03 22:07:00 text ok",
		"13 in  2023-02-03 22:07:00 text ok",
		"14 in  2023-02-04 08:15:00 voice PTT-20230204-WA0001.opus 5120",
		"15 out 2023-02-04 08:20:00 file Price list 2023.pdf 3000",
		"17 in  2023-02-04 08:22:00 text This message was deleted",
		"18 in  2023-02-04 08:30:00 text My order number is below:\n04.02.2023 08:29 - order 5531\nthanks",
		"21 out 2023-02-04 08:31:00 text Sure, noted <This message was edited>",
		"22 out 2023-02-04 08:32:00 location 40.748817,-73.985428",
		"23 in  2023-02-05 11:00:00 text [video: VID-20230205-WA0002.mp4]",
		"25 in  2023-02-13 18:46:00 text See you tomorrow!",
	}, briefs(res, s.Location))
	require.Equal(t, map[string]int64{SkippedService: 2, SkippedEmpty: 1}, res.skipped)

	first := res.recs[0].Payload
	require.Equal(t, "wa-0eb6daeea3455f47", first.ConversationID)
	require.Equal(t, wire.Participant{ID: first.ConversationID, Name: "Anna Schmidt"}, *first.Sender)
	out := res.recs[2].Payload
	require.Equal(t, "bot-1", out.Sender.RefID)
	require.Equal(t, "Acme Support", out.Sender.Name)
	require.Equal(t, "Anna Schmidt", out.Receiver.Name)
	abs, err := filepath.Abs(samples + "android-12h/Price list 2023.pdf")
	require.NoError(t, err)
	require.Equal(t, chatexport.FileURL(abs), res.recs[8].Payload.Message.Media, "a name with spaces")
	require.NotEqual(t, res.recs[5].Payload.MsgID, res.recs[6].Payload.MsgID, "identical messages in one minute")
}

func TestAndroid24hGermanCRLFSample(t *testing.T) {
	s := spec(t, samples+"android-24h")
	res := read(t, s)
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"2 in  2022-01-20 13:30:00 text Hallo, ist die Lieferung schon unterwegs?",
		"3 out 2022-01-20 13:31:00 text Guten Tag Herr Weber, ja, heute zwischen 14 und 16 Uhr.",
		"4 out 2022-01-20 13:31:00 picture IMG-20220120-WA0010.jpg 1500 Ihr Lieferschein",
		"6 in  2022-01-20 13:35:00 text [file]",
		"7 in  2022-01-20 13:36:00 location 53.551086,9.993682",
		"8 in  2022-01-21 09:02:00 text Alles angekommen, danke!\nSchöne Grüße\nJonas",
	}, briefs(res, s.Location))
	require.Equal(t, map[string]int64{SkippedService: 1}, res.skipped)
	require.EqualValues(t, 1, res.stats.Conversations)
}

func TestIOSZipSample(t *testing.T) {
	s := spec(t, samples+"ios/WhatsApp Chat - Olivia Brown.zip")
	s.Location = zone(t, "America/Toronto")
	res := read(t, s)
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"2 in  2022-12-31 11:40:26 text Hi, do you ship to Canada?",
		"3 out 2022-12-31 11:42:03 text Hi Olivia! Yes, 5-7 business days.",
		"4 in  2022-12-31 11:42:10 picture 00000004-PHOTO-2022-12-31-11-42-10.jpg 4096",
		"5 in  2022-12-31 11:43:55 voice 00000005-AUDIO-2022-12-31-11-43-55.opus 6000",
		"6 out 2022-12-31 11:45:00 file 00000006-Catalog Winter.pdf 2500 Catalog Winter.pdf • 3 pages",
		"7 in  2022-12-31 11:46:12 text [picture]",
		"9 in  2022-12-31 11:48:00 sticker 00000007-STICKER-2022-12-31-11-48-00.webp 900",
		"10 out 2023-01-02 09:00:01 text Happy new year! Your order #1042 has shipped.\nTracking: https://track.example/1042",
		"12 out 2023-01-02 09:00:01 text Happy new year! Your order #1042 has shipped.",
		"13 in  2023-01-02 09:03:40 text Thanks!! \u200e<This message was edited>",
	}, briefs(res, s.Location))
	require.Equal(t, map[string]int64{SkippedService: 2}, res.skipped)

	// The media are read in place from the zip.
	media := res.recs[2].Payload.Message.Media
	require.True(t, strings.HasPrefix(media, "zip:///"), media)
	b := readZipURL(t, media)
	require.Len(t, b, 4096)
	require.Equal(t, []byte{0xff, 0xd8, 0xff}, b[:3])
}

func TestSpanishSample(t *testing.T) {
	s := spec(t, samples+"spanish")
	s.Location = zone(t, "Europe/Madrid")
	res := read(t, s)
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"2 in  2017-06-20 20:28:00 text Hola, ¿tienen la mesa en roble?",
		"3 out 2017-06-20 20:30:00 text ¡Hola Lucía! Sí, la tenemos.",
		"4 out 2017-06-20 20:31:00 text [picture: IMG-20170620-WA0003.jpg]",
		"5 in  2017-06-20 20:35:00 text [file]",
		"6 in  2017-06-21 00:05:00 text Perfecto, gracias",
		"7 out 2017-06-21 12:15:00 text De nada 🙂",
	}, briefs(res, s.Location))
	require.Equal(t, "Lucía Fernández", res.recs[0].Payload.Sender.Name)
}

func TestRussianSample(t *testing.T) {
	s := spec(t, samples+"russian")
	s.Location = zone(t, "Europe/Moscow")
	res := read(t, s)
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"2 in  2024-03-15 10:02:00 text Здравствуйте! Диван ещё в наличии?",
		"3 out 2024-03-15 10:05:00 text Добрый день, Иван! Да, в наличии.",
		"4 in  2024-03-15 10:06:00 text [file]",
		"5 out 2024-03-15 10:07:00 text Доставка завтра\nс 10 до 14",
		"7 in  2024-03-16 09:00:00 text Спасибо, получил 👍",
	}, briefs(res, s.Location))
	require.Equal(t, "ООО Мебель", res.recs[1].Payload.Sender.Name)
}

func TestGroupChatSkipped(t *testing.T) {
	res := read(t, spec(t, samples+"group"))
	require.Empty(t, res.recs)
	require.Empty(t, res.errs)
	require.Equal(t, map[string]int64{SkippedGroupChat: 1, SkippedGroupMessage: 4}, res.skipped)
}

func TestUnsavedPeerKeepsThePhone(t *testing.T) {
	res := read(t, spec(t, samples+"unsaved"))
	require.Empty(t, res.errs)
	require.Len(t, res.recs, 3)
	client := res.recs[0].Payload.Sender
	require.Equal(t, "+49 151 23456789", client.Name)
	require.Equal(t, &wire.Profile{Phone: "+49 151 23456789"}, client.Profile)
	require.Equal(t, client, res.recs[1].Payload.Receiver)
	// The id is the digits': the same peer written otherwise is the same chat.
	var other plan
	other.setClient("+49 (151) 234-567-89", "")
	require.Equal(t, res.recs[0].Payload.ConversationID, other.convID)
}

func TestTZIsRequired(t *testing.T) {
	s := spec(t, samples+"android-24h")
	s.Location = nil
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "--tz is required")
	require.ErrorContains(t, err, "without a zone")
}

func TestAmbiguousDatesAskForDateOrder(t *testing.T) {
	s := spec(t, samples+"ambiguous")
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "WhatsApp Chat with Tom Baker.txt: cannot tell the order of day and month")
	require.ErrorContains(t, err, "--date-order dmy, mdy or ymd")

	s.DateOrder = "dmy"
	res := read(t, s)
	require.Len(t, res.recs, 4)
	require.Equal(t, "1 in  2023-02-01 09:15:00 text Hi, is the shop open on Saturday?", brief(res.recs[0], s.Location))
	require.Equal(t, "4 out 2023-04-03 11:30:00 text Of course, within 30 days.", brief(res.recs[3], s.Location))

	s.DateOrder = "mdy"
	res = read(t, s)
	require.Equal(t, "4 out 2023-03-04 11:30:00 text Of course, within 30 days.", brief(res.recs[3], s.Location))
}

func TestDateOrderThatDoesNotFitIsRefused(t *testing.T) {
	s := spec(t, samples+"android-24h")
	s.DateOrder = "mdy"
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "--date-order mdy does not fit")
	require.ErrorContains(t, err, `"20.01.22, 13:28" at line 1 has a month above 12`)
}

// writeChat writes lines as a chat export named name in a new folder.
func writeChat(t *testing.T, name string, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	return path
}

func TestTwoDigitYearFirstNeedsTheFlag(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Kim.txt",
		"23/06/13, 10:00 - Kim: hello",
		"23/06/14, 10:00 - Acme: hi",
		"23/07/02, 10:00 - Kim: bye")
	s := spec(t, path)
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "year first")
	s.DateOrder = "ymd"
	res := read(t, s)
	require.Equal(t, "3 in  2023-07-02 10:00:00 text bye", brief(res.recs[2], s.Location))
}

func TestSidesFromSelfWhenTheNameDoesNotSay(t *testing.T) {
	path := writeChat(t, "chat.txt",
		"12/31/22, 10:00 - Olga: hello",
		"12/31/22, 10:01 - Acme Support: hi Olga")
	s := spec(t, path)
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, `cannot tell the company's side from the client's: "Olga" and "Acme Support" wrote`)
	require.ErrorContains(t, err, "--self NAME")

	s.Self = []string{"acme  SUPPORT"}
	res := read(t, s)
	require.Equal(t, []string{"1 in  2022-12-31 10:00:00 text hello", "2 out 2022-12-31 10:01:00 text hi Olga"}, briefs(res, s.Location))

	// A --users agent counts as the company too.
	s.Self = nil
	require.NoError(t, s.Users.AddAgent("Acme Support", "amojo-7"))
	res = read(t, s)
	require.Equal(t, "amojo-7", res.recs[1].Payload.Sender.RefID)
	require.Nil(t, res.recs[0].Payload.Receiver)

	s.Users, s.Self = nil, []string{"Someone Else"}
	_, err = Open(t.Context(), s)
	require.ErrorContains(t, err, `neither "Olga" nor "Acme Support" is --self`)
}

func TestPeerWhoNeverWrote(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Bob Lee.txt",
		"1/13/23, 9:00 AM - Acme Support: Hello Bob, your order is ready",
		"1/13/23, 9:05 AM - Acme Support: We are open until 6 PM")
	res := read(t, spec(t, path))
	require.Len(t, res.recs, 2)
	for _, r := range res.recs {
		require.Equal(t, "Bob Lee", r.Payload.Receiver.Name, "the file names the client")
		require.Equal(t, "Acme Support", r.Payload.Sender.Name)
	}
}

func TestPeerAlsoSelfIsRefused(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Bob Lee.txt",
		"1/13/23, 9:00 AM - Bob Lee: hi",
		"1/13/23, 9:05 AM - Acme Support: hello")
	s := spec(t, path)
	s.Self = []string{"Bob Lee"}
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "is also --self")
}

// A later export of the same chat: WhatsApp's cap cut its oldest lines,
// new ones were written after, the app put U+202F before PM where the
// first export had a space. The messages both hold get the same ids.
func TestLaterExportKeepsTheIDs(t *testing.T) {
	lines := []string{
		"2/3/23, 10:01 PM - Anna: first",
		"2/3/23, 10:01 PM - Anna: ok",
		"2/3/23, 10:01 PM - Anna: ok",
		"2/3/23, 10:02 PM - Acme: a reply",
		"spanning two lines",
		"2/13/23, 6:46 PM - Anna: See you tomorrow!",
	}
	earlier := read(t, spec(t, writeChat(t, "WhatsApp Chat with Anna.txt", lines...)))
	later := append([]string{}, lines[3:]...)
	for i, l := range later {
		later[i] = strings.Replace(l, " PM", "\u202fPM", 1)
	}
	later = append(later, "2/14/23, 9:00\u202fAM - Anna: thanks, got it", "2/14/23, 9:00\u202fAM - Acme: 👍")
	next := read(t, spec(t, writeChat(t, "WhatsApp Chat with Anna.txt", later...)))
	require.Len(t, earlier.recs, 5)
	require.Len(t, next.recs, 4)
	require.Equal(t, earlier.recs[0].Payload.ConversationID, next.recs[0].Payload.ConversationID)
	require.Equal(t, earlier.recs[3].Payload.MsgID, next.recs[0].Payload.MsgID)
	require.Equal(t, earlier.recs[4].Payload.MsgID, next.recs[1].Payload.MsgID)
	known := map[string]bool{}
	for _, r := range earlier.recs {
		known[r.Payload.MsgID] = true
	}
	require.False(t, known[next.recs[2].Payload.MsgID])
	require.False(t, known[next.recs[3].Payload.MsgID])

	again := read(t, spec(t, writeChat(t, "WhatsApp Chat with Anna.txt", lines...)))
	for i := range earlier.recs {
		require.Equal(t, earlier.recs[i].Payload, again.recs[i].Payload, "the same export gives the same records")
	}
}

// Messages of one minute come out in file order with equal timestamps:
// staging order, the importer's tie-break, is the file's.
func TestEqualTimesKeepFileOrder(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Anna.txt",
		"20.01.22, 13:30 - Anna: c",
		"20.01.22, 13:30 - Anna: a",
		"20.01.22, 13:30 - Acme: b",
		"20.01.22, 13:30 - Anna: a")
	res := read(t, spec(t, path))
	var texts []string
	for i, r := range res.recs {
		texts = append(texts, r.Payload.Message.Text)
		require.Equal(t, res.recs[0].Payload.MsecTimestamp, r.Payload.MsecTimestamp)
		require.EqualValues(t, i+1, r.Line)
	}
	require.Equal(t, []string{"c", "a", "b", "a"}, texts)
}

// The night summer time ends, 02:00-03:00 happens twice in Berlin: the
// second time round, the messages must still come after the first.
func TestHourThatHappensTwiceKeepsFileOrder(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Anna.txt",
		"29.10.23, 01:59 - Anna: before",
		"29.10.23, 02:30 - Anna: summer time",
		"29.10.23, 02:50 - Acme: still summer time",
		"29.10.23, 02:10 - Anna: winter time",
		"29.10.23, 02:40 - Acme: winter time too",
		"29.10.23, 03:05 - Anna: after")
	res := read(t, spec(t, path))
	require.Len(t, res.recs, 6)
	for i := 1; i < len(res.recs); i++ {
		require.Greater(t, res.recs[i].Payload.MsecTimestamp, res.recs[i-1].Payload.MsecTimestamp, "message %d", i+1)
	}
	require.Equal(t, "2023-10-29T02:30:00+02:00", time.UnixMilli(res.recs[1].Payload.MsecTimestamp).In(zone(t, "Europe/Berlin")).Format(time.RFC3339))
	require.Equal(t, "2023-10-29T02:10:00+01:00", time.UnixMilli(res.recs[3].Payload.MsecTimestamp).In(zone(t, "Europe/Berlin")).Format(time.RFC3339))
}

func TestBadMessagesAreReportedAndTheRestGoesOn(t *testing.T) {
	long := strings.Repeat("x", 300)
	path := writeChat(t, "WhatsApp Chat with Anna.txt",
		"Notes I added before the chat",
		"",
		"30.01.23, 10:00 - Anna: one",
		"31.02.23, 10:00 - Anna: not a day",
		"01.03.23, 10:00 - Anna: "+long,
		"01.03.23, 10:01 - Anna: two",
		"01.03.23, 10:02 - Acme: three")
	s := spec(t, path)
	s.MaxRecordBytes = 200
	res := read(t, s)
	require.Len(t, res.errs, 3)
	require.Equal(t, path+":1: text before the first message header: not a WhatsApp message", res.errs[0].Error())
	require.Equal(t, path+`:4: timestamp: "31.02.23, 10:00" is not a date when read as dmy (year 2023, month 2, day 31)`, res.errs[1].Error())
	require.ErrorIs(t, res.errs[2], sources.ErrTooLarge)
	require.EqualValues(t, 5, res.errs[2].Line)
	var texts []string
	for _, r := range res.recs {
		texts = append(texts, r.Payload.Message.Text)
	}
	require.Equal(t, []string{"one", "two", "three"}, texts)
}

// A folder: every chat in the order of its path, lines numbered on from
// file to file, a bad file one bad record that names it, groups and other
// .txt files skipped and counted.
func TestFolderOfChats(t *testing.T) {
	dir := t.TempDir()
	for _, sample := range []string{"android-24h", "ios", "group", "russian"} {
		require.NoError(t, os.CopyFS(filepath.Join(dir, sample), os.DirFS(samples+sample)))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("call Anna back\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "WhatsApp Chat with Broken.txt"), []byte("\xff\xfe1\x002\x00"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.zip"), []byte("PK not really"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".hidden.txt"), []byte("x"), 0o600))

	s := spec(t, dir)
	res := read(t, s)
	require.Len(t, res.errs, 2)
	require.Equal(t, dir+":1: the text is UTF-16; WhatsApp writes UTF-8: save the file as UTF-8 (in WhatsApp Chat with Broken.txt, line 1)", res.errs[0].Error())
	require.Contains(t, res.errs[1].Error(), "not a readable zip")
	require.Contains(t, res.errs[1].Error(), "(in broken.zip, line 1)")
	require.EqualValues(t, 3, res.stats.Conversations)
	require.Equal(t, map[string]int64{SkippedService: 4, SkippedGroupChat: 1, SkippedGroupMessage: 4, SkippedNotChat: 1}, res.skipped)
	var convs []string
	last := int64(0)
	for _, r := range res.recs {
		require.Greater(t, r.Line, last, "positions run on from file to file")
		last = r.Line
		if len(convs) == 0 || convs[len(convs)-1] != r.Payload.ConversationID {
			convs = append(convs, r.Payload.ConversationID)
		}
	}
	require.Len(t, convs, 3, "each chat read whole, one after another")
	d, err := openDecoder(t.Context(), s)
	require.NoError(t, err)
	// android-24h/WhatsApp Chat mit Jonas Weber.txt comes after the two bad files.
	require.Equal(t, "android-24h/WhatsApp Chat mit Jonas Weber.txt, line 2", d.Place(res.recs[0].Line))
}

func TestUTF16FileIsOneBadRecord(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with X.txt")
	require.NoError(t, os.WriteFile(path, []byte("\xff\xfe2\x00/\x00"), 0o600))
	res := read(t, spec(t, path))
	require.Len(t, res.errs, 1)
	require.Equal(t, path+":1: the text is UTF-16; WhatsApp writes UTF-8: save the file as UTF-8", res.errs[0].Error())
}

func TestZipWithAndroidNamesAndNoPeerInTheZipName(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "export.zip")
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	w, err := zw.Create("WhatsApp Chat with Anna.txt")
	require.NoError(t, err)
	_, err = io.WriteString(w, "20.01.22, 13:30 - Anna: hi\n20.01.22, 13:31 - Acme: IMG-20220120-WA0010.jpg (file attached)\nthe photo\n")
	require.NoError(t, err)
	w, err = zw.Create("IMG-20220120-WA0010.jpg")
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 777))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())

	res := read(t, spec(t, path))
	require.Empty(t, res.errs)
	require.Equal(t, []string{
		"1 in  2022-01-20 13:30:00 text hi",
		"2 out 2022-01-20 13:31:00 picture IMG-20220120-WA0010.jpg 777 the photo",
	}, briefs(res, zone(t, "Europe/Berlin")))
	require.Equal(t, chatexport.ZipURL(path, "IMG-20220120-WA0010.jpg"), res.recs[1].Payload.Message.Media)
}

func TestOpenChecksItsInput(t *testing.T) {
	s := spec(t, "-")
	_, err := Open(t.Context(), s)
	require.ErrorContains(t, err, "stdin cannot be read")
	s.Path = filepath.Join(t.TempDir(), "missing.txt")
	_, err = Open(t.Context(), s)
	require.ErrorContains(t, err, "missing.txt")
	s.Path = t.TempDir()
	_, err = Open(t.Context(), s)
	require.ErrorContains(t, err, "holds no .txt or .zip chat export")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.Path = samples
	_, err = Open(ctx, s)
	require.ErrorIs(t, err, context.Canceled)
}

// "Group" in the peer's own name, or in a file's, does not make a group.
func TestGroupWordInANameIsNotAGroup(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Acme Group GmbH.txt",
		"1/13/23, 9:00 AM - Acme Group GmbH: Hello, we need 40 chairs",
		"1/13/23, 9:01 AM - Your security code with Acme Group GmbH changed. Tap to learn more.",
		"1/13/23, 9:05 AM - Möbel Nord: Of course",
		"1/13/23, 9:06 AM - Möbel Nord: \u200e<attached: 00000012-Group photo.jpg>")
	res := read(t, spec(t, path))
	require.Len(t, res.recs, 3)
	require.Equal(t, "Acme Group GmbH", res.recs[0].Payload.Sender.Name)

	group := writeChat(t, "WhatsApp Chat with Team.txt",
		"1/13/23, 9:00 AM - Anna created group \"Team\"",
		"1/13/23, 9:05 AM - Anna: hi",
		"1/13/23, 9:06 AM - Bob: hello")
	res = read(t, spec(t, group))
	require.Empty(t, res.recs, "two speakers, but a group")
	require.Equal(t, map[string]int64{SkippedGroupChat: 1, SkippedGroupMessage: 2}, res.skipped)
}

// A zip whose chat text is damaged half-way: what comes before the damage
// is imported, then one bad record says where reading stopped.
func TestDamagedZipKeepsWhatIsReadable(t *testing.T) {
	var chat strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&chat, "[%d/1/23, 10:%02d:%02d] %s: message %d with some words to compress %x\n",
			1+i/200, i/60%60, i%60, []string{"Olivia Brown", "Acme"}[i%2], i, i*7919)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("_chat.txt")
	require.NoError(t, err)
	_, err = io.WriteString(w, chat.String())
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	b := buf.Bytes()
	for i := len(b) * 6 / 10; i < len(b)*6/10+64; i++ {
		b[i] ^= 0x5a
	}
	path := filepath.Join(t.TempDir(), "WhatsApp Chat - Olivia Brown.zip")
	require.NoError(t, os.WriteFile(path, b, 0o600))

	res := read(t, spec(t, path))
	require.Len(t, res.errs, 1)
	require.Contains(t, res.errs[0].Error(), "read stopped: ")
	require.Contains(t, res.errs[0].Error(), "the rest of this chat is not read")
	require.Greater(t, len(res.recs), 1000, "the messages before the damage")
	require.Less(t, len(res.recs), 3000)
	require.Greater(t, res.errs[0].Line, res.recs[len(res.recs)-1].Line)
}

// Lines written to a chat after it was first read are not read: positions
// stay where the first reading put them.
func TestLinesAddedAfterTheFirstReadingAreLeft(t *testing.T) {
	path := writeChat(t, "WhatsApp Chat with Anna.txt",
		"20.01.22, 13:30 - Anna: one",
		"20.01.22, 13:31 - Acme: two")
	s := spec(t, path)
	d, err := openDecoder(t.Context(), s)
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("20.01.22, 13:32 - Anna: three\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	r := sources.NewReader(s, path, d, true)
	var texts []string
	for {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		texts = append(texts, rec.Payload.Message.Text)
	}
	require.Equal(t, []string{"one", "two"}, texts)
}

func TestSpecCheckTakesWhatsApp(t *testing.T) {
	require.NoError(t, sources.Spec{Kind: Kind, Path: "chats/", Location: time.UTC}.Check())
	require.ErrorContains(t, sources.Spec{Kind: Kind, Location: time.UTC}.Check(), "no path")
	require.ErrorContains(t, sources.Spec{Kind: Kind, Path: "x.txt", Location: time.UTC, ColumnMap: map[string]string{"msgid": "id"}}.Check(), "whatsapp")
	// Before anything is read or a run is made: validate and run call Check first.
	require.ErrorContains(t, sources.Spec{Kind: Kind, Path: "x.txt"}.Check(), "--tz is required")
}

// An iPhone export unzipped: the folder's name names the chat, the media
// lie beside _chat.txt.
func TestUnzippedIPhoneExport(t *testing.T) {
	zr, err := zip.OpenReader(samples + "ios/WhatsApp Chat - Olivia Brown.zip")
	require.NoError(t, err)
	defer zr.Close()
	dir := filepath.Join(t.TempDir(), "WhatsApp Chat - Olivia Brown")
	require.NoError(t, os.CopyFS(dir, zr))
	res := read(t, spec(t, dir))
	require.Empty(t, res.errs)
	require.Len(t, res.recs, 10)
	require.Equal(t, "Olivia Brown", res.recs[0].Payload.Sender.Name)
	require.Equal(t, chatexport.FileURL(filepath.Join(dir, "00000004-PHOTO-2022-12-31-11-42-10.jpg")), res.recs[2].Payload.Message.Media)
}

// A long run of lines without a header still looks at the context.
func TestLongReadStopsWhenCancelled(t *testing.T) {
	lines := []string{"20.01.22, 13:30 - Anna: start"}
	for range 3 * ctxEvery {
		lines = append(lines, "more of the same message")
	}
	s := spec(t, writeChat(t, "WhatsApp Chat with Anna.txt", lines...))
	d, err := openDecoder(t.Context(), s)
	require.NoError(t, err)
	defer d.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var p wire.Payload
	_, err = d.Next(ctx, &p)
	require.ErrorIs(t, err, context.Canceled)
	_, err = openDecoder(ctx, s)
	require.ErrorIs(t, err, context.Canceled)
}

// A chat of notices only (everything else cut or deleted) has nothing to
// import and asks for nothing, even with dates that cannot tell their order.
func TestChatOfNoticesOnly(t *testing.T) {
	path := writeChat(t, "export.txt",
		"1/2/23, 09:15 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.",
		"2/3/23, 09:15 - Your security code with Tom changed. Tap to learn more.")
	res := read(t, spec(t, path))
	require.Empty(t, res.recs)
	require.Empty(t, res.errs)
	require.Equal(t, map[string]int64{SkippedService: 2}, res.skipped)
}

// A file inside the zip cannot be sent as media until it is hosted: without
// hosting it goes out as text naming the file, as a file: URL does.
func TestZipMediaNotHostedBecomesText(t *testing.T) {
	sp := spec(t, filepath.Join("..", "..", "testdata", "whatsapp", "ios"))
	sp.MediaHosted = false
	r, err := Open(context.Background(), sp)
	require.NoError(t, err)
	defer r.Close()
	var texts int
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			continue
		}
		require.False(t, strings.HasPrefix(rec.Payload.Message.Media, "zip:"), "a zip: URL went out: %s", rec.Payload.Message.Media)
		if strings.HasPrefix(rec.Payload.Message.Text, "[picture") || strings.HasPrefix(rec.Payload.Message.Text, "[voice") {
			texts++
		}
	}
	require.Positive(t, texts)
	require.Positive(t, r.Stats().Skipped[sources.SkipMediaNotHosted])
}

// readZipURL reads the entry a zip: URL names (media.LocalRef reads them
// for uploads; its tests cover names that need escaping).
func readZipURL(t *testing.T, media string) []byte {
	t.Helper()
	u, err := url.Parse(media)
	require.NoError(t, err)
	zr, err := zip.OpenReader(filepath.FromSlash(u.Path))
	require.NoError(t, err)
	defer zr.Close()
	rc, err := zr.Open(u.Query().Get("entry"))
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}
