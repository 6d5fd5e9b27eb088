package sources

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
	// Version is a file's size and modification time; for a folder (an
	// export's), a digest of the size and modification time of every data
	// file in it (see dirVersion); "" for stdin and databases (which have
	// none a run could compare).
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
	version := fmt.Sprintf("%d bytes, modified %s", fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano))
	if fi.IsDir() {
		if version, err = dirVersion(abs); err != nil {
			return Identity{}, fmt.Errorf("source: %w", err)
		}
	}
	return Identity{Label: s.Kind + ":" + abs, Version: version, Base: filepath.Base(abs)}, nil
}

// dataExts are the files of a folder export that its readers parse: a change
// to any is a new export. Media files are left out: they are many, and a
// message already sent is not sent again whatever became of its file.
var dataExts = map[string]bool{".json": true, ".txt": true, ".zip": true}

// dirVersion is a folder's Version: "N data files, sha256 …" over the
// relative path, size and modification time of each data file under it, so
// that the same folder resumes its run and a newer export in its place (a
// file added, grown or rewritten) is a new run.
func dirVersion(dir string) (string, error) {
	h := sha256.New()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !dataExts[strings.ToLower(filepath.Ext(path))] {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano())
		n++
		return nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d data files, sha256 %x", n, h.Sum(nil)[:12]), nil
}
