package whatsapp

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// shape is how a file writes its message headers. One export is written by
// one phone in one locale, so every header of a file has the same shape;
// a line that starts with a date in another shape ("12.03.2024 14:00 -
// meeting" inside a message of a "3/12/24, 2:00 PM - " file) is part of the
// message above it, not a header. scan picks the file's shape as the most
// common one.
type shape struct {
	bracket   bool   // iOS: "[date, time] "
	dateSep   byte   // '/', '.' or '-'
	dateSpace bool   // "13. 6. 2018"
	dateTrail bool   // a '.' after the date ("2018.")
	comma     bool   // "date, time"
	word      string // a word between date and time ("klo", "à"), folded
	yearPos   int8   // the part with 4 digits, -1 when the year has 2
	timeSep   byte   // ':' or '.'
	seconds   bool
	ampm      bool   // a 12-hour clock
	after     string // what separates the time from the content: " - ", ": " or " "
}

// header is a parsed message header.
type header struct {
	shape shape
	date  [3]int // the date's parts as written
	hour  int    // 0-23 (12-hour clocks converted)
	min   int
	sec   int
	// start is where the date begins in the line (after invisible marks
	// and the bracket); content is where the text after the header begins.
	start, content int
	end            int // where the date and time end (before the separator)
}

// rawTime is the header's date and time as written.
func (h *header) rawTime(line []byte) []byte { return line[h.start:h.end] }

// Invisible marks WhatsApp writes around headers, names and numbers:
// U+200E/U+200F (direction marks), U+202A-U+202E (embeddings), U+2066-U+2069
// (isolates) and the byte-order mark.
func invisibleAt(b []byte, i int) int {
	if i+2 < len(b) && b[i] == 0xe2 {
		switch {
		case b[i+1] == 0x80 && (b[i+2] == 0x8e || b[i+2] == 0x8f || b[i+2] >= 0xaa && b[i+2] <= 0xae),
			b[i+1] == 0x81 && b[i+2] >= 0xa6 && b[i+2] <= 0xa9:
			return 3
		}
	}
	if i+2 < len(b) && b[i] == 0xef && b[i+1] == 0xbb && b[i+2] == 0xbf {
		return 3
	}
	return 0
}

// spaceAt is the width of a space at b[i]: ' ', TAB, NBSP (U+00A0, inside
// Spanish "p. m."), U+202F (before AM/PM since 2023), U+2007 and U+2009;
// 0 when there is none.
func spaceAt(b []byte, i int) int {
	if i >= len(b) {
		return 0
	}
	switch b[i] {
	case ' ', '\t':
		return 1
	case 0xc2:
		if i+1 < len(b) && b[i+1] == 0xa0 {
			return 2
		}
	case 0xe2:
		if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xaf || b[i+2] == 0x87 || b[i+2] == 0x89) {
			return 3
		}
	}
	return 0
}

// skipSpaces skips spaces and invisible marks; n reports how many spaces.
func skipSpaces(b []byte, i int) (j, n int) {
	for {
		if w := spaceAt(b, i); w > 0 {
			i += w
			n++
			continue
		}
		if w := invisibleAt(b, i); w > 0 {
			i += w
			continue
		}
		return i, n
	}
}

func skipInvisible(b []byte, i int) int {
	for {
		w := invisibleAt(b, i)
		if w == 0 {
			return i
		}
		i += w
	}
}

// digits reads 1 to max ASCII digits at b[i].
func digits(b []byte, i, max int) (v, n int) {
	for n < max && i+n < len(b) && b[i+n] >= '0' && b[i+n] <= '9' {
		v = v*10 + int(b[i+n]-'0')
		n++
	}
	return v, n
}

// AM/PM words that come after the time (Latin ones are matched by
// latinAMPM) or before it (Korean, Chinese, Japanese).
var (
	amWords = [][]byte{[]byte("π.μ."), []byte("ص"), []byte("ق.ظ."), []byte("午前"), []byte("上午"), []byte("오전")}
	pmWords = [][]byte{[]byte("μ.μ."), []byte("م"), []byte("ب.ظ."), []byte("午後"), []byte("下午"), []byte("오후")}
)

// latinAMPM matches "am", "AM", "a.m.", "a. m." (with any space inside) at
// b[i]: 1 for am, 2 for pm, and the bytes it spans.
func latinAMPM(b []byte, i int) (ampm, n int) {
	j := i
	if j >= len(b) {
		return 0, 0
	}
	switch b[j] | 0x20 {
	case 'a':
		ampm = 1
	case 'p':
		ampm = 2
	default:
		return 0, 0
	}
	j++
	if j < len(b) && b[j] == '.' {
		j++
	}
	j, _ = skipSpaces(b, j)
	if j >= len(b) || b[j]|0x20 != 'm' {
		return 0, 0
	}
	j++
	if j < len(b) && b[j] == '.' {
		j++
	}
	if j < len(b) && isWordByte(b[j]) {
		return 0, 0 // "amigo", "pmx": not a marker
	}
	return ampm, j - i
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// otherAMPM matches a non-Latin AM/PM word at b[i], as a word of its own
// (Arabic "م" must not be the first letter of a name).
func otherAMPM(b []byte, i int) (ampm, n int) {
	if i >= len(b) {
		return 0, 0
	}
	for k, words := range [2][][]byte{amWords, pmWords} {
		for _, w := range words {
			if bytes.HasPrefix(b[i:], w) && wordEnds(b, i+len(w)) {
				return k + 1, len(w)
			}
		}
	}
	return 0, 0
}

// wordEnds reports whether a word ends at b[i]: anything but another
// letter ("下午9:25" has the time right after the word).
func wordEnds(b []byte, i int) bool {
	if i >= len(b) {
		return true
	}
	r, _ := utf8.DecodeRune(b[i:])
	return !unicode.IsLetter(r)
}

// parseHeader parses the message header at the start of line: an optional
// '[', the date (three numbers of 1-2 or 4 digits joined by '/', '.' or
// '-'), the time (12 or 24 hours, with or without seconds), an AM/PM
// marker in any of its spellings, the closing ']', and the separator before
// the content. U+200E/U+200F and the other invisible marks are skipped
// anywhere in the header, U+202F and NBSP count as spaces. It reports false
// for a line that does not start with a header.
func parseHeader(line []byte) (h header, ok bool) {
	i := skipInvisible(line, 0)
	if i < len(line) && line[i] == '[' {
		h.shape.bracket = true
		i = skipInvisible(line, i+1)
	}
	h.start = i
	// The date.
	var lens [3]int
	for k := range 3 {
		v, n := digits(line, i, 4)
		if n == 0 || n == 3 {
			return h, false
		}
		h.date[k], lens[k] = v, n
		i += n
		if k == 2 {
			break
		}
		if i >= len(line) {
			return h, false
		}
		sep := line[i]
		if sep != '/' && sep != '.' && sep != '-' {
			return h, false
		}
		if k == 0 {
			h.shape.dateSep = sep
		} else if sep != h.shape.dateSep {
			return h, false
		}
		i++
		if w := spaceAt(line, i); w > 0 {
			if k == 0 {
				h.shape.dateSpace = true
			} else if !h.shape.dateSpace {
				return h, false
			}
			i += w
		} else if h.shape.dateSpace {
			return h, false
		}
	}
	h.shape.yearPos = -1
	for k, n := range lens {
		if n == 4 {
			if h.shape.yearPos >= 0 {
				return h, false // two 4-digit parts: not a date
			}
			h.shape.yearPos = int8(k)
		}
	}
	if i < len(line) && line[i] == '.' {
		h.shape.dateTrail = true
		i++
	}
	if i < len(line) && line[i] == ',' {
		h.shape.comma = true
		i++
	}
	i, n := skipSpaces(line, i)
	if n == 0 {
		return h, false
	}
	// A word between date and time: an AM/PM word of the languages that
	// put it first, or a word such as Finnish "klo".
	ampm := 0
	if a, w := otherAMPM(line, i); a != 0 {
		ampm = a
		i, _ = skipSpaces(line, i+w)
	} else if j, word := wordAt(line, i); word != "" {
		var sp int
		if i, sp = skipSpaces(line, j); sp == 0 {
			return h, false
		}
		h.shape.word = word
	}
	// The time.
	hour, n := digits(line, i, 2)
	if n == 0 {
		return h, false
	}
	i += n
	if i >= len(line) || line[i] != ':' && line[i] != '.' {
		return h, false
	}
	h.shape.timeSep = line[i]
	i++
	min, n := digits(line, i, 2)
	if n != 2 {
		return h, false
	}
	i += n
	sec := 0
	if i+2 < len(line) && line[i] == h.shape.timeSep && line[i+1] >= '0' && line[i+1] <= '9' {
		var n int
		if sec, n = digits(line, i+1, 2); n != 2 {
			return h, false
		}
		h.shape.seconds = true
		i += 1 + n
	}
	h.end = i
	if ampm == 0 {
		j, _ := skipSpaces(line, i)
		if a, w := latinAMPM(line, j); a != 0 {
			ampm, i = a, j+w
		} else if a, w := otherAMPM(line, j); a != 0 {
			ampm, i = a, j+w
		}
		if ampm != 0 {
			h.end = i
		}
	}
	if ampm != 0 {
		h.shape.ampm = true
		if hour > 12 {
			return h, false
		}
		hour %= 12
		if ampm == 2 {
			hour += 12
		}
	}
	if hour > 23 || min > 59 || sec > 59 {
		return h, false
	}
	h.hour, h.min, h.sec = hour, min, sec
	i = skipInvisible(line, i)
	if h.shape.bracket {
		if i >= len(line) || line[i] != ']' {
			return h, false
		}
		i++
	}
	// The separator before the content.
	j, sp := skipSpaces(line, i)
	switch {
	case j < len(line) && (line[j] == '-' || hasPrefixAt(line, j, "\u2013")) && sp > 0:
		// " - " (Android); some fonts' locales write an en dash.
		k := j + 1
		if line[j] != '-' {
			k = j + len("\u2013")
		}
		k, sp2 := skipSpaces(line, k)
		if sp2 == 0 && k < len(line) {
			return h, false
		}
		h.shape.after, h.content = " - ", k
	case sp == 0 && i < len(line) && line[i] == ':':
		k, sp2 := skipSpaces(line, i+1)
		if sp2 == 0 && k < len(line) {
			return h, false
		}
		h.shape.after, h.content = ": ", k
	case sp > 0 && j < len(line):
		h.shape.after, h.content = " ", j
	default:
		return h, false
	}
	return h, true
}

func hasPrefixAt(b []byte, i int, s string) bool {
	return i <= len(b) && bytes.HasPrefix(b[i:], []byte(s))
}

// wordAt reads a short word of letters (and dots: Norwegian "kl.") at
// b[i], folded to lower case; "" when there is none.
func wordAt(b []byte, i int) (j int, word string) {
	j = i
	runes := 0
	for j < len(b) && runes < 12 {
		r, w := utf8.DecodeRune(b[j:])
		if !unicode.IsLetter(r) && r != '.' {
			break
		}
		j += w
		runes++
	}
	if runes == 0 || runes == 12 {
		return i, ""
	}
	return j, string(bytes.ToLower(b[i:j]))
}
