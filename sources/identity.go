package sources

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Identity says which input a Spec reads, in the terms a run records: the
// same command over the same input resumes its run, a new export starts a
// new one.
type Identity struct {
	// Label is how the run records its source: "csv:/abs/export.csv",
	// "jsonl:-", "postgres:table=public.chat", "postgres:query=SELECT …". It
	// never holds a password (the DSN is left out).
	Label string
	// Version is a file's size and modification time, "" for stdin and
	// databases (which have none a run could compare).
	Version string
	// Base is a readable start for a derived run name: the file's base name,
	// the table's name, "postgres" for a query.
	Base string
	// Stream is true for stdin: it has no name to resume by, and it can be
	// read again only by being given again.
	Stream bool
}

// Identity returns the spec's identity; for a file it stats the file. A
// subset (Spec.Filter) is part of it: its description is added to the
// Label, and "-subset" to the Base, so a rehearsal on a few chats is a run
// of its own, never resumed as (or by) the whole import.
func (s Spec) Identity() (Identity, error) {
	id, err := s.identity()
	if err != nil {
		return id, err
	}
	if d := s.Filter.Describe(s.Location); d != "" {
		id.Label += " [only " + d + "]"
		id.Base += "-subset"
	}
	return id, nil
}

func (s Spec) identity() (Identity, error) {
	switch {
	case s.Kind == KindPostgres && s.Table != "":
		return Identity{Label: "postgres:table=" + s.Table, Base: s.Table}, nil
	case s.Kind == KindPostgres:
		return Identity{Label: "postgres:query=" + s.Query, Base: "postgres"}, nil
	case s.Path == "-" || s.Path == "":
		return Identity{Label: s.Kind + ":-", Base: "stdin", Stream: true}, nil
	}
	abs, err := filepath.Abs(s.Path)
	if err != nil {
		return Identity{}, fmt.Errorf("source: %w", err)
	}
	fi, err := os.Stat(s.Path)
	if err != nil {
		return Identity{}, fmt.Errorf("source: %w", err)
	}
	return Identity{
		Label:   s.Kind + ":" + abs,
		Version: fmt.Sprintf("%d bytes, modified %s", fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano)),
		Base:    filepath.Base(s.Path),
	}, nil
}
