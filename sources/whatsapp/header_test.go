package whatsapp

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The header forms of the reference (export-formats.md, section 3) and of
// Pustur/whatsapp-chat-parser's tests/parser.test.ts "formats", each with
// the date as written, the 24-hour time and the text after the header.
func TestParseHeader(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		date       [3]int
		hms        [3]int
		content    string
		bracket    bool
		ampm       bool
		after      string
	}{
		{"android 12h with U+202F", "2/4/23, 10:35\u202fPM - Person 1: Got it. So is it 4:30 or 6?", [3]int{2, 4, 23}, [3]int{22, 35, 0}, "Person 1: Got it. So is it 4:30 or 6?", false, true, " - "},
		{"android 12h plain space", "12/31/20, 10:15 PM - John: hi", [3]int{12, 31, 20}, [3]int{22, 15, 0}, "John: hi", false, true, " - "},
		{"android 24h dd.mm.yy", "20.01.22, 13:30 - Username: IMG-20220120-WA0010.jpg (file attached)", [3]int{20, 1, 22}, [3]int{13, 30, 0}, "Username: IMG-20220120-WA0010.jpg (file attached)", false, false, " - "},
		{"ios bracketed with U+200E", "\u200e[31/12/2022 11:40:26] John Doe: \u200e<attached: 00000001-AUDIO-2022-12-31-11-40-26.opus>", [3]int{31, 12, 2022}, [3]int{11, 40, 26}, "John Doe: \u200e<attached: 00000001-AUDIO-2022-12-31-11-40-26.opus>", true, false, " "},
		{"ios 12h", "[12/31/20, 10:15:32 PM] John: hi", [3]int{12, 31, 20}, [3]int{22, 15, 32}, "John: hi", true, true, " "},
		{"spanish p. m. with NBSP", "20/6/2017 8:28 p.\u00a0m. - Michelle: test", [3]int{20, 6, 2017}, [3]int{20, 28, 0}, "Michelle: test", false, true, " - "},
		{"pustur 1", "3/6/18, 1:55 p.m. - a: m", [3]int{3, 6, 18}, [3]int{13, 55, 0}, "a: m", false, true, " - "},
		{"pustur 2", "03-06-2018, 01.55 PM - a: m", [3]int{3, 6, 2018}, [3]int{13, 55, 0}, "a: m", false, true, " - "},
		{"pustur 3 colon after the time", "13.06.18 21.25.15: a: m", [3]int{13, 6, 18}, [3]int{21, 25, 15}, "a: m", false, false, ": "},
		{"pustur 4", "[06.13.18 21:25:15] a: m", [3]int{6, 13, 18}, [3]int{21, 25, 15}, "a: m", true, false, " "},
		{"pustur 5 finnish klo", "13.6.2018 klo 21.25.15 - a: m", [3]int{13, 6, 2018}, [3]int{21, 25, 15}, "a: m", false, false, " - "},
		{"pustur 6 spaced date, no separator", "13. 6. 2018. 21:25:15 a: m", [3]int{13, 6, 2018}, [3]int{21, 25, 15}, "a: m", false, false, " "},
		{"pustur 7", "[3/6/18 1:55:00 p. m.] a: m", [3]int{3, 6, 18}, [3]int{13, 55, 0}, "a: m", true, true, " "},
		{"pustur 8 U+200E first", "\u200e[3/6/18 1:55:00 p. m.] a: m", [3]int{3, 6, 18}, [3]int{13, 55, 0}, "a: m", true, true, " "},
		{"pustur 9 year first", "[2018/06/13, 21:25:15] a: m", [3]int{2018, 6, 13}, [3]int{21, 25, 15}, "a: m", true, false, " "},
		{"pustur 10 year in the middle", "[06/2018/13, 21:25:15] a: m", [3]int{6, 2018, 13}, [3]int{21, 25, 15}, "a: m", true, false, " "},
		{"pustur 11 NBSP in p. m.", "3/6/2018 1:55 p.\u00a0m. - a: m", [3]int{3, 6, 2018}, [3]int{13, 55, 0}, "a: m", false, true, " - "},
		{"pustur 12 U+202F", "3/6/18, 1:55\u202fPM - a: m", [3]int{3, 6, 18}, [3]int{13, 55, 0}, "a: m", false, true, " - "},
		{"korean AM/PM word first", "2018. 6. 13. 오후 9:25 - 김민수: 안녕하세요", [3]int{2018, 6, 13}, [3]int{21, 25, 0}, "김민수: 안녕하세요", false, true, " - "},
		{"chinese AM/PM word without space", "2018/6/13 下午9:25 - 王: 你好", [3]int{2018, 6, 13}, [3]int{21, 25, 0}, "王: 你好", false, true, " - "},
		{"arabic AM/PM after the time", "13/06/2018, 9:25 م - محمد: مرحبا", [3]int{13, 6, 2018}, [3]int{21, 25, 0}, "محمد: مرحبا", false, true, " - "},
		{"12 AM is midnight", "1/1/23, 12:05 AM - a: m", [3]int{1, 1, 23}, [3]int{0, 5, 0}, "a: m", false, true, " - "},
		{"12 PM is noon", "1/1/23, 12:05 pm - a: m", [3]int{1, 1, 23}, [3]int{12, 5, 0}, "a: m", false, true, " - "},
		{"system line", "06/03/2017, 00:45 - You created group \"Test\"", [3]int{6, 3, 2017}, [3]int{0, 45, 0}, "You created group \"Test\"", false, false, " - "},
		{"empty message", "03/02/17, 18:42 - Luke: ", [3]int{3, 2, 17}, [3]int{18, 42, 0}, "Luke: ", false, false, " - "},
		{"U+202A around a phone author", "05/03/2024, 14:10 - \u202a+49 151 23456789\u202c: Hallo", [3]int{5, 3, 2024}, [3]int{14, 10, 0}, "+49 151 23456789\u202c: Hallo", false, false, " - "},
		{"author after a 24h time, not AM/PM", "[13.06.18 21:25:15] Amy: hi", [3]int{13, 6, 18}, [3]int{21, 25, 15}, "Amy: hi", true, false, " "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := []byte(tc.line)
			h, ok := parseHeader(line)
			require.True(t, ok)
			require.Equal(t, tc.date, h.date)
			require.Equal(t, tc.hms, [3]int{h.hour, h.min, h.sec})
			require.Equal(t, tc.content, string(line[h.content:]))
			require.Equal(t, tc.bracket, h.shape.bracket)
			require.Equal(t, tc.ampm, h.shape.ampm)
			require.Equal(t, tc.after, h.shape.after)
		})
	}
}

func TestParseHeaderRefuses(t *testing.T) {
	for _, line := range []string{
		"",
		"hello",
		"2016-04-29 10:30:00",             // a date and time alone, inside a message (Pustur's test)
		"12/31/20, 10:15 PM -5 degrees",   // no space after the dash
		"[12/31/20, 10:15:32 PM John: hi", // no closing bracket
		"12/31/20, 25:00 - a: b",
		"12/31/20, 13:00 PM - a: b",
		"12/31/20, 10:7 - a: b",
		"123/4/5, 10:00 - a: b",
		"1/2/3/4, 10:00 - a: b",
		"12/31.20, 10:00 - a: b", // two separators
		"2018/2018/13, 10:00 - a: b",
		"12/31/20,10:00- a: b",
		"31.12.2022 meeting at 14:00 - room 4", // a word that is not followed by a time
		"12/31/20, 10:00",
	} {
		_, ok := parseHeader([]byte(line))
		require.False(t, ok, "%q", line)
	}
}

func TestShapesTellHeadersFromDatesInText(t *testing.T) {
	file, _ := parseHeader([]byte("2/4/23, 8:30\u202fAM - Anna: My order number is below:"))
	inText, ok := parseHeader([]byte("04.02.2023 08:29 - order 5531"))
	require.True(t, ok, "it looks like a header on its own")
	require.NotEqual(t, file.shape, inText.shape, "but not like this file's")
	same, _ := parseHeader([]byte("12/31/23, 11:59\u202fPM - Bob: x"))
	require.Equal(t, file.shape, same.shape)
	plain, _ := parseHeader([]byte("12/31/23, 11:59 PM - Bob: x"))
	require.Equal(t, file.shape, plain.shape, "U+202F and a space are the same shape")
}
