package meta

import "unicode/utf8"

// repair undoes the mojibake of Meta's JSON exports, which write each byte of
// a UTF-8 string as its own code point: "café" arrives as "caf\u00c3\u00a9".
// If every rune of s is at most U+00FF, the runes taken as bytes are the
// string meant, provided those bytes are valid UTF-8; otherwise s was not
// mojibake (a real "é" alone is the byte E9, never valid UTF-8 on its own)
// and is returned as it is. This is msgvault's DecodeMojibake rule; a plain
// Latin-1 encode would fail on runes above U+00FF instead.
func repair(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return s // ASCII: nothing to repair (the common case, no allocation)
	}
	b := make([]byte, i, len(s))
	copy(b, s[:i])
	for _, r := range s[i:] {
		if r > 0xff {
			return s
		}
		b = append(b, byte(r))
	}
	if !utf8.Valid(b) {
		return s
	}
	return string(b)
}
