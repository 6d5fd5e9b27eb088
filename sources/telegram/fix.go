package telegram

// Known invalid JSON that versions of Telegram Desktop write, repaired
// before decoding (only when a value does not decode as it stands, so valid
// files pay nothing):
//
//   - \xHH escapes: control bytes other than \n, \r and \t are written as
//     \x01 (TD-JSON SerializeString); inside strings, \x and two hex digits
//     become \u00HH. Every other escape pair is copied untouched, so an
//     escaped backslash followed by x41 (the text \x41) stays literal.
//   - Bare values: 4.1.1 wrote a custom emoji's document_id unquoted, to the
//     end of its line ("document_id": video_files/sticker (2).webm,
//     tdesktop#24961). A value that starts with anything JSON does not allow
//     is quoted up to the end of its line (a trailing comma stays outside).
//
// A duplicate key (the "text" of star gifts in 5.9.0, tdesktop#28781) is
// valid for encoding/json, which keeps the last one.

// edit is where a repair changed the length: from out (an offset in the
// repaired bytes) on, the repaired bytes are delta longer than the original.
type edit struct{ out, delta int }

// repair returns src with the known faults repaired (appended to dst), the
// edits that map its offsets back, and whether anything changed.
func repair(dst, src []byte) ([]byte, []edit, bool) {
	var edits []edit
	delta := 0
	inStr, wantValue := false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if inStr {
			switch {
			case c == '\\' && i+3 < len(src) && src[i+1] == 'x' && isHex(src[i+2]) && isHex(src[i+3]):
				dst = append(dst, '\\', 'u', '0', '0', src[i+2], src[i+3])
				i += 3
				delta += 2
				edits = append(edits, edit{len(dst), delta})
			case c == '\\' && i+1 < len(src):
				dst = append(dst, c, src[i+1])
				i++
			case c == '"':
				inStr = false
				dst = append(dst, c)
			default:
				dst = append(dst, c)
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			dst = append(dst, c)
			continue
		case ':', '[', ',':
			wantValue = true
			dst = append(dst, c)
			continue
		}
		if wantValue && !valueStart(src[i:]) {
			// A bare value: quote it to the end of the line.
			end := i
			for end < len(src) && src[end] != '\n' && src[end] != '\r' {
				end++
			}
			stop := end
			for stop > i && (src[stop-1] == ' ' || src[stop-1] == '\t') {
				stop--
			}
			comma := stop > i && src[stop-1] == ','
			if comma {
				stop--
			}
			dst = append(dst, '"')
			delta++
			for _, b := range src[i:stop] {
				if b == '"' || b == '\\' {
					dst = append(dst, '\\')
					delta++
				}
				dst = append(dst, b)
			}
			dst = append(dst, '"')
			delta++
			edits = append(edits, edit{len(dst), delta})
			if comma {
				dst = append(dst, ',')
			}
			dst = append(dst, src[stop+btoi(comma):end]...)
			i = end - 1
			wantValue = false
			continue
		}
		wantValue = false
		if c == '"' {
			inStr = true
		}
		dst = append(dst, c)
	}
	return dst, edits, len(edits) > 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// valueStart reports whether b starts a JSON value (or closes an empty
// array, or an object after a comma: the decoder judges those).
func valueStart(b []byte) bool {
	switch c := b[0]; {
	case c == '"' || c == '{' || c == '[' || c == ']' || c == '}' || c == '-' || c >= '0' && c <= '9':
		return true
	case c == 't':
		return literal(b, "true")
	case c == 'f':
		return literal(b, "false")
	case c == 'n':
		return literal(b, "null")
	}
	return false
}

// literal reports b starting with word followed by a delimiter.
func literal(b []byte, word string) bool {
	if len(b) < len(word) || string(b[:len(word)]) != word {
		return false
	}
	if len(b) == len(word) {
		return true
	}
	switch b[len(word)] {
	case ' ', '\t', '\r', '\n', ',', '}', ']':
		return true
	}
	return false
}

// origOffset maps an offset in repaired bytes back to the original.
func origOffset(edits []edit, out int64) int64 {
	delta := 0
	for _, e := range edits {
		if int64(e.out) > out {
			break
		}
		delta = e.delta
	}
	return out - int64(delta)
}
