package whatsapp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// lineReader reads a chat text line by line: line ends (LF or CRLF) and
// the byte-order mark cut off, lines longer than max cut at max (tooLong).
type lineReader struct {
	br      *bufio.Reader
	max     int
	line    int64 // the number of the line last returned, from 1
	off     int64 // where the next line starts
	buf     []byte
	tooLong bool
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// errUTF16: the text is UTF-16, which WhatsApp never writes (the file was
// saved again by another program).
var errUTF16 = errors.New("the text is UTF-16; WhatsApp writes UTF-8: save the file as UTF-8")

// checkEncoding looks at the first bytes for a UTF-16 byte-order mark.
func (l *lineReader) checkEncoding() error {
	b, _ := l.br.Peek(2)
	if len(b) == 2 && (b[0] == 0xff && b[1] == 0xfe || b[0] == 0xfe && b[1] == 0xff) {
		return errUTF16
	}
	return nil
}

// next returns the next line (valid until the next call) and the offset
// where it starts; io.EOF after the last.
func (l *lineReader) next() ([]byte, int64, error) {
	start := l.off
	l.tooLong = false
	frag, err := l.br.ReadSlice('\n')
	l.off += int64(len(frag))
	line := frag
	if err == bufio.ErrBufferFull {
		l.buf = append(l.buf[:0], frag...)
		for err == bufio.ErrBufferFull {
			frag, err = l.br.ReadSlice('\n')
			l.off += int64(len(frag))
			if len(l.buf)+len(frag) <= l.max {
				l.buf = append(l.buf, frag...)
			} else {
				l.tooLong = true
			}
		}
		line = l.buf
	}
	if err == io.EOF {
		if l.off == start {
			return nil, start, io.EOF
		}
		err = nil // a last line without a line end
	}
	if err != nil {
		return nil, start, err
	}
	if len(line) > l.max {
		line, l.tooLong = line[:l.max], true
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	l.line++
	if l.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\ufeff"))
	}
	return line, start, nil
}
