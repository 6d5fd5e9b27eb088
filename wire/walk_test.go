package wire

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// jsonName is a struct field's name on the wire ("" for a field not sent).
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

// fill sets every scalar field under v to a value of its own (strings
// "s<n>", numbers n), allocates every pointer and gives every slice two
// elements, and records each scalar's path (as Walk spells it) and value.
func fill(v reflect.Value, path string, n *int, want map[string]any) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path, n, want)
	case reflect.Struct:
		for i := range v.NumField() {
			name := jsonName(v.Type().Field(i))
			if name == "" {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			fill(v.Field(i), p, n, want)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), path+"[]", n, want)
		}
	case reflect.String:
		*n++
		v.SetString("s" + strings.Repeat("x", *n))
		want[path] = v.String()
	case reflect.Int, reflect.Int64:
		*n++
		v.SetInt(int64(*n))
		want[path] = v.Int()
	case reflect.Float64:
		*n++
		v.SetFloat(float64(*n) + 0.5)
		want[path] = v.Float()
	case reflect.Bool:
		v.SetBool(true)
		want[path] = true
	default:
		panic("wire: fill: unhandled kind " + v.Kind().String() + " at " + path)
	}
}

// TestWalkVisitsEveryField ties Walk to the payload type: a field added to
// any type of the payload and not visited by Walk fails here (and so would
// escape the UTF-8 check, the duplicate hash and every other pass).
func TestWalkVisitsEveryField(t *testing.T) {
	var p Payload
	want := map[string]any{}
	n := 0
	fill(reflect.ValueOf(&p).Elem(), "", &n, want)

	got := map[string]any{}
	var names []string
	Walk(&p, func(f Field) bool {
		switch f.Kind {
		case KindString:
			got[f.Path] = f.Str
		case KindInt:
			got[f.Path] = f.Int
		case KindFloat:
			got[f.Path] = f.Float
		case KindBool:
			got[f.Path] = f.Bool
		case KindPresence:
			return true
		}
		names = append(names, f.Name())
		return true
	})
	var missing, extra []string
	for k := range want {
		if _, ok := got[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	require.Empty(t, missing, "fields of the payload type that Walk does not visit")
	require.Empty(t, extra, "paths Walk reports that the payload type does not have")
	// Each path reads its own field (the second element for a list: the
	// last one visited).
	require.Equal(t, want, got)
	require.Contains(t, names, "forwards.messages[0].text")
	require.Contains(t, names, "forwards.messages[1].text")
}

func TestWalkStopsAndReportsPresence(t *testing.T) {
	p := Payload{MsgID: "m1", Message: &Message{Type: TypeText, Text: "hi"}}
	var seen []string
	Walk(&p, func(f Field) bool {
		seen = append(seen, f.Path)
		return f.Path != "message.text"
	})
	require.Equal(t, "message.text", seen[len(seen)-1], "Walk stops when fn says so")
	require.Contains(t, seen, "sender")
	var sender Field
	Walk(&p, func(f Field) bool {
		if f.Path == "sender" {
			sender = f
		}
		return true
	})
	require.Equal(t, KindPresence, sender.Kind)
	require.Zero(t, sender.Int, "a nil sender is reported absent")
}
