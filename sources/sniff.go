package sources

import (
	"bufio"
	"bytes"
	"fmt"
)

// sniffSize is how much of the input is looked at before reading: enough
// for a header row or a first JSONL record, small beside the read buffer.
const sniffSize = 64 << 10

// checkText refuses input that would read as garbage rather than as bad
// records: UTF-16 (Excel's "Unicode text", PowerShell's default), which
// would make every line invalid, and CR-only line ends (classic Mac OS),
// which would make the whole file one line. name is for the message.
func checkText(br *bufio.Reader, name string) error {
	head, _ := br.Peek(sniffSize) // a read error comes again on the first read
	if bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) || looksUTF16(head) {
		return fmt.Errorf("%s: UTF-16 encoded: save it as UTF-8 (Excel: CSV UTF-8), or convert it: iconv -f UTF-16 -t UTF-8 %s", name, shellName(name))
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 && cr < len(head)-1 && bytes.IndexByte(head, '\n') < 0 {
		return fmt.Errorf("%s: line ends are CR only (classic Mac OS): convert them to LF, e.g. tr '\\r' '\\n' < %s", name, shellName(name))
	}
	return nil
}

// looksUTF16 spots UTF-16 without a BOM: text in it has a NUL in every
// other byte wherever it is ASCII (a header row, JSON punctuation), which
// UTF-8 text never has.
func looksUTF16(head []byte) bool {
	n := min(len(head), 512) &^ 1
	if n < 4 {
		return false
	}
	var even, odd int
	for i := 0; i < n; i += 2 {
		if head[i] == 0 {
			even++
		}
		if head[i+1] == 0 {
			odd++
		}
	}
	return max(even, odd)*4 >= n // a NUL in half the pairs or more
}

// checkJSONL refuses a file that is JSON but not JSONL: an array of
// messages, or objects pretty-printed over several lines. Read line by line
// either gives one rejected record per line of the file, and no message.
func checkJSONL(br *bufio.Reader, name string) error {
	head, _ := br.Peek(sniffSize)
	head = bytes.TrimPrefix(head, bom)
	rest := bytes.TrimLeft(head, " \t\r\n")
	if len(rest) == 0 {
		return nil
	}
	first, next, _ := bytes.Cut(rest, []byte("\n"))
	first = bytes.TrimSpace(first)
	switch {
	case len(first) == 0:
		return nil // white space only (a form feed, say): nothing to tell
	case first[0] == '[':
		return fmt.Errorf("%s: looks like a JSON array: JSONL needs one JSON object per line (convert it: jq -c '.[]' %s)", name, shellName(name))
	case first[0] != '{' || first[len(first)-1] == '}':
		return nil // one object a line, or a line that is simply bad
	}
	// A first line that opens an object without closing it, followed by an
	// indented line or a lone key: pretty-printed.
	next = bytes.TrimLeft(next, "\r\n")
	if len(first) == 1 || len(next) > 0 && (next[0] == ' ' || next[0] == '\t' || next[0] == '"' || next[0] == '}') {
		return fmt.Errorf("%s: looks like pretty-printed JSON (one object over several lines): JSONL needs one JSON object per line (convert it: jq -c . %s)", name, shellName(name))
	}
	return nil
}

// shellName is the file for a suggested command.
func shellName(name string) string {
	if name == "stdin" {
		return "FILE"
	}
	if bytes.ContainsAny([]byte(name), " '\"$`\\!*?[]()&;|<>") {
		return "'" + string(bytes.ReplaceAll([]byte(name), []byte("'"), []byte(`'\''`))) + "'"
	}
	return name
}
