package whatsapp

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/sources"
)

// fuzzSeeds are the pitfalls of the reference, one snippet each; the
// samples under testdata/whatsapp are added too.
var fuzzSeeds = []string{
	"2/4/23, 10:35\u202fPM - Person 1: Got it. So is it 4:30 or 6?\n2/4/23, 10:36\u202fPM - Acme: 6\n",
	"20.01.22, 13:30 - Username: IMG-20220120-WA0010.jpg (file attached)\ncaption\n20.01.22, 13:31 - Acme: ok\n",
	"\u200e[31/12/2022 11:40:26] John Doe: \u200e<attached: 00000001-AUDIO-2022-12-31-11-40-26.opus>\n[31/12/2022 11:41:00] Acme: hi\n",
	"20/6/2017 8:28 p.\u00a0m. - Michelle: test\n21/6/2017 12:05 a.\u00a0m. - Acme: <Multimedia omitido>\n",
	"13.6.2018 klo 21.25.15 - a: m\n13. 6. 2018. 21:25:15 a: m\n13.06.18 21.25.15: a: m\n[2018/06/13, 21:25:15] a: m\n",
	"1/2/23, 09:15 - Tom: a\n2/3/23, 10:00 - Acme: b\n",
	"06/03/2017, 00:45 - You created group \"Test\"\n06/03/2017, 00:47 - A: hi\n06/03/2017, 00:47 - B: hi\n06/03/2017, 00:47 - C: hi\n",
	"05/03/2024, 14:10 - \u202a+49 151 23456789\u202c: Hallo\n18/03/2024, 08:05 - Acme: ok\r\n",
	"29.10.23, 02:50 - Anna: x\n29.10.23, 02:10 - Anna: y\n",
	"31.02.23, 10:00 - Anna: no such day\n01.03.23, 10:00 - Anna: ok\n",
	"junk before\n2/4/23, 10:35 PM - Anna: <Media omitted>\n2/4/23, 10:35 PM - Anna: \u200eimage omitted\n2/4/23, 10:36 PM - Acme: location: https://maps.google.com/?q=1.5,2.5\n",
	"\ufeff2/4/23, 10:35 PM - Messages and calls are end-to-end encrypted. Tap to learn more.\n2/4/23, 10:35 PM - Anna: \u200eMissed voice call\n",
	"\xff\xfe2\x00/\x004\x00",
	"2018. 6. 13. 오후 9:25 - 김: 안녕\n2018. 6. 13. 오후 9:26 - Acme: 네\n",
}

// FuzzWhatsApp reads any text as a WhatsApp chat, as a .txt or as the
// _chat.txt of a zip, with any --date-order: it must never panic, Open may
// only refuse with an error naming the file, and every bad record is a
// *sources.LineError naming the file and a line, with lines going forward.
func FuzzWhatsApp(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), uint8(0))
	}
	_ = filepath.WalkDir("../../testdata/whatsapp", func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".txt") {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b, uint8(1))
			}
		}
		return nil
	})
	utc := time.UTC
	f.Fuzz(func(t *testing.T, input []byte, opts uint8) {
		dir := t.TempDir()
		path := filepath.Join(dir, "WhatsApp Chat with Anna.txt")
		if opts&4 != 0 {
			path = filepath.Join(dir, "WhatsApp Chat - Anna.zip")
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			w, _ := zw.Create("_chat.txt")
			_, _ = w.Write(input)
			_ = zw.Close()
			input = buf.Bytes()
		}
		if err := os.WriteFile(path, input, 0o600); err != nil {
			t.Fatal(err)
		}
		users := sources.NewUserMap()
		users.SetBotID("bot")
		spec := sources.Spec{Kind: Kind, Path: path, Location: utc, Self: []string{"Acme"}, Users: users,
			DateOrder: []string{"", "dmy", "mdy", "ymd"}[opts&3], MaxRecordBytes: 1 + int(opts>>3)*64, Now: now}
		if opts&8 != 0 {
			spec.MediaMissing = sources.MediaMissingText
		}
		r, err := Open(t.Context(), spec)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("Open's error does not name the file: %v", err)
			}
			return
		}
		defer r.Close()
		var last int64
		for n := 0; ; n++ {
			rec, err := r.Next(t.Context())
			if err == io.EOF {
				break
			}
			var le *sources.LineError
			if errors.As(err, &le) {
				if le.File != path || le.Line < 1 || le.Line < last {
					t.Fatalf("bad record at %s:%d after line %d: %v", le.File, le.Line, last, le)
				}
				last = le.Line
				continue
			}
			if err != nil {
				t.Fatalf("not a *LineError: %v", err)
			}
			if rec.Line <= last && n > 0 || rec.Payload.MsgID == "" || rec.Payload.ConversationID == "" {
				t.Fatalf("record at line %d after line %d: %+v", rec.Line, last, rec.Payload)
			}
			last = rec.Line
			if n > len(input) {
				t.Fatal("more records than bytes")
			}
		}
	})
}
