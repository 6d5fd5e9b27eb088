package meta

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// export is the export's files: a folder (read through os.Root, so no
// symbolic link inside it leads out) or a .zip, read entry by entry without
// unpacking it. Paths are fs paths: slash-separated, relative to the top.
type export struct {
	fsys fs.FS
	dir  string // the folder's absolute path; "" for a zip, whose files are not on disk
	io.Closer
}

func openExport(p string) (*export, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		root, err := os.OpenRoot(abs)
		if err != nil {
			return nil, err
		}
		return &export{fsys: root.FS(), dir: abs, Closer: root}, nil
	}
	zr, err := zip.OpenReader(p)
	if err != nil {
		if errors.Is(err, zip.ErrFormat) {
			return nil, fmt.Errorf("%s is neither a folder nor a .zip: give the unzipped \"Download your information\" folder or its .zip", p)
		}
		return nil, err
	}
	return &export{fsys: zr, Closer: zr}, nil
}

// local is the file's path on disk, "" in a zip.
func (e *export) local(name string) string {
	if e.dir == "" {
		return ""
	}
	return filepath.Join(e.dir, filepath.FromSlash(name))
}

// threadRef is one thread found in the export, not read yet.
type threadRef struct {
	section string   // "inbox", "archived_threads", "message_requests", ...; "e2ee" for the E2EE export's files
	key     string   // stable across exports of the account: the conversation_id after the prefix
	files   []string // message_N.json, highest N (oldest messages) first; for E2EE the one file
	e2ee    bool
	legacy  bool     // Instagram's messages.json of 2018-2020
	root    string   // the messages folder (for E2EE: the files' folder)
	base    string   // where the export's media uris start: the parent of messages/
	odd     []string // message_*.json siblings that are not message_N.json (message_final.json): skipped
}

// name names the thread in errors: its folder, or the E2EE export's file.
func (t *threadRef) name() string {
	switch {
	case len(t.files) == 0:
		return t.key
	case t.e2ee || t.legacy:
		return t.files[0]
	}
	return path.Dir(t.files[0])
}

// layout is where a kind's messages live, newest layout first.
var layouts = map[string][]string{
	KindMessenger: {"your_facebook_activity/messages", "your_activity_across_facebook/messages", "messages"},
	KindInstagram: {"your_instagram_activity/messages", "messages"},
}

var reMessageFile = regexp.MustCompile(`^message_([0-9]{1,9})\.json$`)

// discovery is what discover found.
type discovery struct {
	threads []threadRef
	legacy  string // Instagram 2018-2020: the one messages.json
	html    int    // thread folders holding only message_N.html (an export in HTML format)
}

// discover finds every thread of the export, sorted by path so that two
// reads of the same export yield the same records in the same order.
func discover(fsys fs.FS, kind string) (*discovery, error) {
	top := "."
	roots := existing(fsys, top, layouts[kind])
	if len(roots) == 0 && !isMessagesRoot(fsys, top) && !isFile(fsys, path.Join(top, "messages.json")) {
		// A folder that holds the export one level down (unzipped into a
		// folder of its own, or a zip of that folder).
		if sub := onlySubdir(fsys, top); sub != "" && !activityDirs[path.Base(sub)] {
			top = sub
			roots = existing(fsys, top, layouts[kind])
		}
	}
	d := &discovery{}
	if len(roots) == 0 {
		if err := otherKind(fsys, top, kind); err != nil {
			return nil, err
		}
		if kind == KindInstagram && isFile(fsys, path.Join(top, "messages.json")) {
			d.legacy = path.Join(top, "messages.json")
			return d, nil
		}
	}
	flat := []string{top}
	if isMessagesRoot(fsys, top) && len(roots) == 0 {
		roots = []string{top} // the messages folder itself was given
		flat = nil
	}
	for _, root := range roots {
		base := path.Dir(root)
		if root == top {
			base = path.Dir(top)
		}
		if err := d.walkSections(fsys, root, base); err != nil {
			return nil, err
		}
		flat = append(flat, root)
	}
	if kind == KindMessenger {
		for _, dir := range slices.Compact(flat) {
			d.flatE2EE(fsys, dir)
		}
	}
	slices.SortFunc(d.threads, func(a, b threadRef) int { return strings.Compare(a.files[0], b.files[0]) })
	if len(d.threads) == 0 && d.html > 0 {
		return nil, fmt.Errorf("the export is in HTML format (%d threads of message_N.html): download it again with Format JSON", d.html)
	}
	if len(d.threads) == 0 && len(roots) == 0 {
		return nil, fmt.Errorf("no messages found: looked for %s (and the E2EE export's <Name>_<N>.json files)", strings.Join(layouts[kind], "/, ")+"/")
	}
	return d, nil
}

// activityDirs are the folders the newer layouts keep messages/ in.
var activityDirs = map[string]bool{"your_facebook_activity": true, "your_activity_across_facebook": true, "your_instagram_activity": true}

// otherKind is an error when top holds the other kind's export.
func otherKind(fsys fs.FS, top, kind string) error {
	for other, dirs := range layouts {
		if other == kind {
			continue
		}
		for _, r := range dirs[:len(dirs)-1] { // messages/ alone says nothing about whose export it is
			if found := existing(fsys, top, []string{r}); len(found) > 0 {
				return fmt.Errorf("this is an export of %s (%s): read it with --source %s:PATH", title(other), found[0], other)
			}
		}
	}
	return nil
}

func isFile(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.Mode().IsRegular()
}

func title(kind string) string {
	if kind == KindInstagram {
		return "Instagram"
	}
	return "Messenger"
}

func existing(fsys fs.FS, top string, dirs []string) []string {
	var out []string
	for _, d := range dirs {
		p := path.Join(top, d)
		if fi, err := fs.Stat(fsys, p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// isMessagesRoot reports a folder that holds an inbox/ (the messages folder
// itself).
func isMessagesRoot(fsys fs.FS, dir string) bool {
	fi, err := fs.Stat(fsys, path.Join(dir, "inbox"))
	return err == nil && fi.IsDir()
}

// onlySubdir is the one folder in dir when dir holds nothing else but
// hidden or macOS resource entries.
func onlySubdir(fsys fs.FS, dir string) string {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return ""
	}
	only := ""
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || e.Name() == "__MACOSX" {
			continue
		}
		if !e.IsDir() || only != "" {
			return ""
		}
		only = path.Join(dir, e.Name())
	}
	return only
}

// walkSections adds the threads of every section of a messages folder:
// inbox, archived_threads, filtered_threads, message_requests, e2ee_cutover
// and any section Meta adds later (a folder of thread folders).
func (d *discovery) walkSections(fsys fs.FS, root, base string) error {
	sections, err := fs.ReadDir(fsys, root)
	if err != nil {
		return fmt.Errorf("read %s: %w", root, err)
	}
	for _, s := range sections {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		threads, err := fs.ReadDir(fsys, path.Join(root, s.Name()))
		if err != nil {
			continue
		}
		for _, t := range threads {
			if !t.IsDir() || strings.HasPrefix(t.Name(), ".") {
				continue
			}
			dir := path.Join(root, s.Name(), t.Name())
			ref, html := threadFiles(fsys, dir)
			if ref == nil {
				if html {
					d.html++
				}
				continue
			}
			ref.section, ref.key, ref.root, ref.base = s.Name(), threadKey(t.Name()), root, base
			d.threads = append(d.threads, *ref)
		}
	}
	return nil
}

// threadFiles lists a thread folder's message_N.json, highest N first; nil
// when it has none (html says whether it has message_N.html instead).
func threadFiles(fsys fs.FS, dir string) (ref *threadRef, html bool) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, false
	}
	type numbered struct {
		name string
		n    int
	}
	var files []numbered
	var odd []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, "message_") {
			continue
		}
		if m := reMessageFile.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			files = append(files, numbered{name, n})
		} else if strings.HasSuffix(name, ".json") {
			odd = append(odd, path.Join(dir, name))
		} else if strings.HasSuffix(name, ".html") {
			html = true
		}
	}
	if len(files) == 0 {
		return nil, html
	}
	slices.SortFunc(files, func(a, b numbered) int { return b.n - a.n })
	ref = &threadRef{odd: odd}
	for _, f := range files {
		ref.files = append(ref.files, path.Join(dir, f.name))
	}
	return ref, false
}

// flatE2EE adds the JSON files directly in dir as threads of the E2EE
// export (www.messenger.com/secure_storage/dyi): <Name>_<N>.json beside one
// media/ folder. Which of them are threads is known only on reading: the
// export's settings files are JSON too, and are passed over then.
func (d *discovery) flatE2EE(fsys fs.FS, dir string) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(strings.ToLower(name), ".json") {
			continue
		}
		d.threads = append(d.threads, threadRef{
			section: "e2ee",
			key:     "e2ee-" + strings.TrimSuffix(name, path.Ext(name)),
			files:   []string{path.Join(dir, name)},
			e2ee:    true,
			root:    dir,
			base:    dir,
		})
	}
}

// threadKey is the stable part of a thread folder's name "<slug>_<id>": the
// id, when the part after the last underscore looks like one (six or more
// letters and digits, a digit among them). The slug is made from the other
// person's name at export time and changes when they rename; the section
// changes when a message request is accepted or a thread archived. The id
// does neither, so a later export's thread is the same conversation.
func threadKey(folder string) string {
	i := strings.LastIndexByte(folder, '_')
	if i < 0 {
		return folder
	}
	id := folder[i+1:]
	if len(id) < 6 || strings.IndexFunc(id, func(r rune) bool { return r >= '0' && r <= '9' }) < 0 ||
		strings.IndexFunc(id, func(r rune) bool { return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) >= 0 {
		return folder
	}
	return id
}
