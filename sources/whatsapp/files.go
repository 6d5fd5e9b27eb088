package whatsapp

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
	"sort"
	"strings"

	"github.com/kommo-import/kommo-import/sources/chatexport"
)

// input is one chat of the source: a .txt file, or the chat text in a .zip.
type input struct {
	path  string // the .txt or .zip on disk, absolute
	rel   string // how messages name it: relative to the source folder, or the path as given
	isZip bool
	peer  string // the peer's name from the file name; "" when the name does not say
}

// findInputs lists the chats at root: the file itself, or every .txt and
// .zip under a folder (hidden files and __MACOSX left out), in the order
// of their paths, so a folder is read the same way every time.
func findInputs(root string) ([]*input, bool, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, false, err
	}
	if !fi.IsDir() {
		in, err := newInput(root, root)
		if err != nil {
			return nil, false, err
		}
		return []*input{in}, false, nil
	}
	var out []*input
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if p != root && (strings.HasPrefix(name, ".") || name == "__MACOSX") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".txt", ".zip":
		default:
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			rel = p
		}
		in, err := newInput(p, rel)
		if err != nil {
			return err
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, true, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, true, nil
}

func newInput(p, rel string) (*input, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	isZip := strings.EqualFold(filepath.Ext(p), ".zip")
	peer := peerFromName(filepath.Base(p))
	if peer == "" && !isZip {
		// An unzipped iPhone export: "WhatsApp Chat - Olivia Brown/_chat.txt".
		peer = peerFromName(filepath.Base(filepath.Dir(abs)))
	}
	return &input{path: abs, rel: rel, isZip: isZip, peer: peer}, nil
}

// chatPrefixes start the names WhatsApp gives an export, in the languages
// the README lists (compared folded, "_" read as a space).
var chatPrefixes = []string{
	"whatsapp chat with ", "whatsapp chat - ", "whatsapp chat mit ", "whatsapp-chat mit ",
	"чат whatsapp с ", "chat de whatsapp con ", "conversa do whatsapp com ", "conversa de whatsapp com ",
	"discussion whatsapp avec ", "chat whatsapp con ", "whatsapp-chat met ", "whatsapp chat met ",
	"czat whatsapp z ", "whatsapp sohbeti: ", "чат whatsapp із ",
}

// copySuffix is what a browser or a file manager adds to a second copy: " (1)".
var copySuffix = regexp.MustCompile(` \(\d{1,3}\)$`)

// peerFromName is the peer a chat export's file name names: "WhatsApp
// Chat with Anna Schmidt.txt", "WhatsApp_Chat_with_Anna_Schmidt.txt",
// "WhatsApp Chat - +49 151 1234567.zip", "Чат WhatsApp с Иваном.txt";
// "" for "_chat.txt" or a name of the user's own.
func peerFromName(base string) string {
	name := strings.TrimSuffix(base, filepath.Ext(base))
	name = copySuffix.ReplaceAllString(name, "")
	if !strings.Contains(name, " ") {
		name = strings.ReplaceAll(name, "_", " ")
	}
	lower := strings.ToLower(cleanName(name))
	clean := cleanName(name)
	for _, p := range chatPrefixes {
		if strings.HasPrefix(lower, p) {
			// Cut as many bytes from the name as the folded prefix has
			// runes in the original: prefixes are the same length folded.
			return strings.TrimSpace(cutRunes(clean, len([]rune(p))))
		}
	}
	return ""
}

func cutRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[i:]
		}
		n--
	}
	return ""
}

// chatFile is an open chat: its text, and its media files.
type chatFile struct {
	text io.ReadCloser
	zr   *zip.ReadCloser
	dir  string               // a .txt's folder, where its media lie
	zdir string               // the chat text's folder in the zip
	zmed map[string]*zip.File // the zip's files beside the chat text, by name
	path string               // the zip on disk
}

// errNoChat: a zip holds no chat text.
var errNoChat = errors.New("no chat in the zip (want _chat.txt or one \"WhatsApp Chat with ….txt\")")

// open opens the chat text (for a zip, the entry _chat.txt or the one
// "WhatsApp Chat …" .txt). Media are read in place from the zip later, not
// extracted.
func (in *input) open() (*chatFile, error) {
	if !in.isZip {
		f, err := os.Open(in.path)
		if err != nil {
			return nil, err
		}
		return &chatFile{text: f, dir: filepath.Dir(in.path)}, nil
	}
	zr, err := zip.OpenReader(in.path)
	if err != nil {
		return nil, fmt.Errorf("not a readable zip: %w", err)
	}
	entry, err := chatEntry(zr.File)
	if err != nil {
		zr.Close()
		return nil, err
	}
	rc, err := entry.Open()
	if err != nil {
		zr.Close()
		return nil, fmt.Errorf("%s: %w", entry.Name, err)
	}
	cf := &chatFile{text: rc, zr: zr, zdir: path.Dir(entry.Name), zmed: map[string]*zip.File{}, path: in.path}
	for _, f := range zr.File {
		if path.Dir(f.Name) == cf.zdir && !f.FileInfo().IsDir() {
			cf.zmed[path.Base(f.Name)] = f
		}
	}
	return cf, nil
}

// chatEntry picks the chat text of a zip: "_chat.txt" (iOS), else the one
// .txt whose name WhatsApp gave it, else the only .txt.
func chatEntry(files []*zip.File) (*zip.File, error) {
	var named, txt []*zip.File
	for _, f := range files {
		base := path.Base(f.Name)
		if f.FileInfo().IsDir() || strings.HasPrefix(f.Name, "__MACOSX/") || !strings.EqualFold(path.Ext(base), ".txt") {
			continue
		}
		if base == "_chat.txt" {
			return f, nil
		}
		txt = append(txt, f)
		if peerFromName(base) != "" {
			named = append(named, f)
		}
	}
	switch {
	case len(named) == 1:
		return named[0], nil
	case len(named) == 0 && len(txt) == 1:
		return txt[0], nil
	}
	return nil, errNoChat
}

// peerName is the peer the input's names give: the zip's, else the chat
// text's inside it.
func (in *input) peerName(cf *chatFile) string {
	if in.peer != "" || cf == nil || cf.zr == nil {
		return in.peer
	}
	for _, f := range cf.zr.File {
		if path.Dir(f.Name) == cf.zdir && strings.EqualFold(path.Ext(f.Name), ".txt") {
			if p := peerFromName(path.Base(f.Name)); p != "" {
				return p
			}
		}
	}
	return ""
}

// Close closes the chat text and the zip.
func (cf *chatFile) Close() error {
	err := cf.text.Close()
	if cf.zr != nil {
		err = errors.Join(err, cf.zr.Close())
	}
	return err
}

// localMedia is a media file found in the export.
type localMedia struct {
	url  string // file:///abs/IMG-1.jpg, or zip:///abs/chat.zip?entry=IMG-1.jpg
	path string // the file's absolute path; "" in a zip
	size int64
}

// exists reports whether the export holds a media file of that name.
func (cf *chatFile) exists(name string) bool {
	_, ok := cf.media(name)
	return ok
}

// media finds the file name beside the chat text: in the .txt's folder,
// or in the zip (read in place: the media package opens zip: URLs, see
// media.LocalRef).
func (cf *chatFile) media(name string) (localMedia, bool) {
	if !validName(name) {
		return localMedia{}, false
	}
	if cf.zr != nil {
		f, ok := cf.zmed[name]
		if !ok || f.UncompressedSize64 > 1<<62 {
			return localMedia{}, false
		}
		return localMedia{url: chatexport.ZipURL(cf.path, f.Name), size: int64(f.UncompressedSize64)}, true
	}
	p := filepath.Join(cf.dir, name)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return localMedia{}, false
	}
	return localMedia{url: chatexport.FileURL(p), path: p, size: fi.Size()}, true
}
