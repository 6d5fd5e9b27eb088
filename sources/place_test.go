package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/wire"
)

// filesDecoder reads "two files" as one source: lines 1-3 are a.txt's,
// 4-6 b.txt's. Its line 2 is a bad record it finds itself, line 5 one that
// validation refuses, line 6 a good one.
type filesDecoder struct{ n int }

func (d *filesDecoder) Next(_ context.Context, p *wire.Payload) (Position, error) {
	d.n++
	*p = wire.Payload{MsgID: fmt.Sprint("m", d.n), ConversationID: "c", Timestamp: 1700000000,
		Sender: &wire.Participant{ID: "u", Name: "U"}, Message: &wire.Message{Type: wire.TypeText, Text: "hi"}}
	switch d.n {
	case 1:
		return Position{Line: 2}, &LineError{Field: "timestamp", Err: errors.New("not a date")}
	case 2:
		p.Message = nil
		return Position{Line: 5}, nil
	case 3:
		return Position{Line: 6}, nil
	}
	return Position{}, io.EOF
}

func (d *filesDecoder) Close() error { return nil }

func (d *filesDecoder) Place(line int64) string {
	if line <= 3 {
		return fmt.Sprintf("a.txt, line %d", line)
	}
	return fmt.Sprintf("b.txt, line %d", line-3)
}

func TestRejectNamesTheFileOfASourceOfSeveral(t *testing.T) {
	r := NewReader(Spec{Now: nowFunc}, "exports", &filesDecoder{}, true)
	_, err := r.Next(t.Context())
	var le *LineError
	require.ErrorAs(t, err, &le)
	require.Equal(t, "exports:2: timestamp: not a date (in a.txt, line 2)", le.Error())
	_, err = r.Next(t.Context())
	require.ErrorAs(t, err, &le)
	require.Equal(t, "exports:5: message: required (in b.txt, line 2)", le.Error())
	require.EqualValues(t, 5, le.Line, "the line stays the source's: runs key rejects by it")
	require.ErrorIs(t, le, ErrRequired)
	rec, err := r.Next(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, 6, rec.Line)
}
