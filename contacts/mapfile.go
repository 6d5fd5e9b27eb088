package contacts

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Map is the operator's word on which contact a conversation's chat goes
// to: by conversation_id, else by the client's id. It wins over the search.
type Map struct {
	byConversation map[string]int64 // 0: leave unlinked
	byClient       map[string]int64
}

// MapHelp describes the --contacts-map file.
const MapHelp = `CSV with a header row: contact_id and conversation_id or client_id (or both: the
conversation wins); other columns are ignored, so a plan CSV with contact_id filled in
works as a map. contact_id is a contact's id, or "none" to leave the chat unlinked; an
empty contact_id says nothing (the search decides)`

// Len is the number of entries.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.byConversation) + len(m.byClient)
}

// Lookup returns the map's contact for a conversation (by its id, else its
// client's id): ok is false when the map says nothing, contactID 0 when it
// says "leave it unlinked".
func (m *Map) Lookup(conversationID, clientID string) (contactID int64, ok bool) {
	if m == nil {
		return 0, false
	}
	if id, ok := m.byConversation[conversationID]; ok {
		return id, true
	}
	if clientID == "" {
		return 0, false
	}
	id, ok := m.byClient[clientID]
	return id, ok
}

// LineError is a bad line of a map file.
type LineError struct {
	File  string
	Line  int
	Field string
	Err   error
}

func (e *LineError) Error() string {
	s := fmt.Sprintf("%s:%d: ", e.File, e.Line)
	if e.Field != "" {
		s += e.Field + ": "
	}
	return s + e.Err.Error()
}

func (e *LineError) Unwrap() error { return e.Err }

// maxMapErrors is how many bad lines LoadMap reports before it stops.
const maxMapErrors = 20

// LoadMap reads a --contacts-map file (MapHelp). Every bad line is reported
// (a *LineError each, joined; up to 20), and a map with any is refused: the
// operator's word must be read exactly.
func LoadMap(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadMap(f, path)
}

// ReadMap reads a map from r; name is the file's name for errors.
func ReadMap(r io.Reader, name string) (*Map, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &LineError{File: name, Line: 1, Err: errors.New("empty file: want a header row with contact_id and conversation_id or client_id")}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	_, hasConv := col["conversation_id"]
	_, hasClient := col["client_id"]
	if _, ok := col["contact_id"]; !ok || !hasConv && !hasClient {
		return nil, &LineError{File: name, Line: 1, Err: fmt.Errorf("the header %q lacks contact_id, or both conversation_id and client_id", strings.Join(header, ","))}
	}
	get := func(rec []string, c string) string {
		if i, ok := col[c]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	m := &Map{byConversation: map[string]int64{}, byClient: map[string]int64{}}
	var errs []error
	bad := func(line int, field string, err error) {
		if len(errs) < maxMapErrors {
			errs = append(errs, &LineError{File: name, Line: line, Field: field, Err: err})
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad(pe.Line, "", pe.Err)
				if errors.Is(pe.Err, csv.ErrQuote) || errors.Is(pe.Err, csv.ErrBareQuote) {
					continue
				}
			}
			return nil, errors.Join(append(errs, fmt.Errorf("%s: %w", name, err))...)
		}
		line, _ := cr.FieldPos(0)
		raw := get(rec, "contact_id")
		if raw == "" {
			continue // the search decides
		}
		var id int64
		if !strings.EqualFold(raw, "none") {
			id, err = strconv.ParseInt(raw, 10, 64)
			if err != nil || id <= 0 {
				bad(line, "contact_id", fmt.Errorf("%q: want a contact id (a positive integer) or none", raw))
				continue
			}
		}
		conv, client := get(rec, "conversation_id"), get(rec, "client_id")
		key, into, field := conv, m.byConversation, "conversation_id"
		if conv == "" {
			key, into, field = client, m.byClient, "client_id"
		}
		if key == "" {
			bad(line, "", errors.New("neither conversation_id nor client_id"))
			continue
		}
		if prev, dup := into[key]; dup && prev != id {
			bad(line, field, fmt.Errorf("%q is mapped twice, to %s and to %s", key, mapValue(prev), mapValue(id)))
			continue
		}
		into[key] = id
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func mapValue(id int64) string {
	if id == 0 {
		return "none"
	}
	return strconv.FormatInt(id, 10)
}
