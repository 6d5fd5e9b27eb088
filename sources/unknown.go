package sources

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// ErrUnknownField: a JSON key that is not part of the Chats API payload as
// chatsapi's types define it. encoding/json drops it, so it is never sent;
// with Spec.Strict the record is rejected instead.
var ErrUnknownField = errors.New("not part of the Chats API payload (a typo?)")

// MaxUnknownFields caps Stats.UnknownFields: a source full of another
// system's fields lists the first 100 paths met.
const MaxUnknownFields = 100

// schemaNode is one object of the payload schema: the JSON keys it knows
// and, for each, the node of its value (nil for a scalar). list marks an
// array of such objects.
type schemaNode struct {
	fields map[string]*schemaNode
	list   bool
}

// The schemas a JSONL line is checked against, built once from the types:
// a whole event, and a bare payload (which may also say event_type).
var (
	payloadSchema = schemaOf(reflect.TypeFor[wire.Payload]())
	eventSchema   = &schemaNode{fields: map[string]*schemaNode{"event_type": nil, "payload": payloadSchema}}
	bareSchema    = func() *schemaNode {
		n := &schemaNode{fields: map[string]*schemaNode{"event_type": nil, "payload": nil}}
		for k, v := range payloadSchema.fields {
			n.fields[k] = v
		}
		return n
	}()
)

// schemaOf builds the node of a struct type from its json tags; pointers
// and slices are looked through.
func schemaOf(t reflect.Type) *schemaNode {
	list := false
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		list = list || t.Kind() == reflect.Slice
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	n := &schemaNode{fields: map[string]*schemaNode{}, list: list}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		n.fields[name] = schemaOf(f.Type)
	}
	return n
}

// lookup finds key among the node's fields the way encoding/json matches
// them: exactly, else without regard to case (such a key is decoded, and
// sent).
func (n *schemaNode) lookup(key []byte) (*schemaNode, bool) {
	if child, ok := n.fields[string(key)]; ok { // no allocation
		return child, true
	}
	for k, child := range n.fields {
		if bytes.EqualFold([]byte(k), key) {
			return child, true
		}
	}
	return nil, false
}

// keyScan walks a line that is known to be valid JSON (json.Unmarshal took
// it) and notes every key its schema does not know. It skips strings with
// IndexByte, so it costs a fraction of the decoding it follows; it allocates
// only for the paths it reports.
type keyScan struct {
	b     []byte
	i     int
	path  []byte
	found []string
}

// scan resets s and walks line against top; paths start with prefix.
func (s *keyScan) scan(line []byte, top *schemaNode, prefix string) []string {
	s.b, s.i, s.found = line, 0, s.found[:0]
	s.path = append(s.path[:0], prefix...)
	s.value(top)
	return s.found
}

func (s *keyScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// value walks one value; n is its schema node, nil when nothing inside it is checked.
func (s *keyScan) value(n *schemaNode) {
	s.ws()
	if s.i >= len(s.b) {
		return
	}
	switch s.b[s.i] {
	case '{':
		s.object(n)
	case '[':
		s.i++
		for {
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] == ']' {
				s.i++
				return
			}
			if s.b[s.i] == ',' {
				s.i++
				continue
			}
			s.value(n)
		}
	case '"':
		s.skipString()
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return
			}
			s.i++
		}
	}
}

func (s *keyScan) object(n *schemaNode) {
	s.i++ // {
	for {
		s.ws()
		if s.i >= len(s.b) {
			return
		}
		switch s.b[s.i] {
		case '}':
			s.i++
			return
		case ',':
			s.i++
			continue
		}
		start := s.i
		escaped := s.skipString()
		key := s.b[start+1 : s.i-1]
		s.ws()
		s.i++ // :
		if n == nil || n.fields == nil {
			s.value(nil)
			continue
		}
		if escaped {
			var k string
			if json.Unmarshal(s.b[start:s.i-1], &k) == nil {
				key = []byte(k)
			}
		}
		child, ok := n.lookup(key)
		if !ok {
			s.note(key)
			s.value(nil)
			continue
		}
		if child == nil {
			s.value(nil)
			continue
		}
		mark := len(s.path)
		s.path = append(s.path, key...)
		if child.list {
			s.path = append(s.path, "[]"...)
		}
		s.path = append(s.path, '.')
		s.value(child)
		s.path = s.path[:mark]
	}
}

// note records path+key once.
func (s *keyScan) note(key []byte) {
	p := string(s.path) + string(key)
	for _, f := range s.found {
		if f == p {
			return
		}
	}
	s.found = append(s.found, p)
}

// skipString moves past the string at s.i and reports whether it holds an
// escape.
func (s *keyScan) skipString() bool {
	escaped := false
	for j := s.i + 1; ; {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			s.i = len(s.b)
			return escaped
		}
		end := j + k
		bs := 0
		for e := end - 1; e > s.i && s.b[e] == '\\'; e-- {
			bs++
		}
		if bytes.IndexByte(s.b[j:end], '\\') >= 0 {
			escaped = true
		}
		if bs%2 == 0 {
			s.i = end + 1
			return escaped
		}
		j = end + 1
	}
}

// unknownReject is the --strict reason for the first unknown path of a
// record. Paths under "payload." name a payload field; others are keys of
// the event itself.
func unknownReject(path string) *LineError {
	if field, ok := strings.CutPrefix(path, "payload."); ok {
		return &LineError{Field: field, Err: fmt.Errorf("%w; --strict refuses it", ErrUnknownField)}
	}
	return &LineError{Err: fmt.Errorf("%q at the top of the event: %w; --strict refuses it", path, ErrUnknownField)}
}
