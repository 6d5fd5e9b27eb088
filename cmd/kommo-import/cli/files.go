package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// atomicFile is a file written whole or not at all: the bytes go to a
// temporary file beside the target, renamed over it by commit. Through a
// symbolic link, the link's target is written (the link stays a link); an
// existing target keeps its mode.
type atomicFile struct {
	*os.File // the temporary file
	target   string
	mode     fs.FileMode
	old      fs.FileInfo // the file replaced, or nil
}

// errExists: the file is there and replacing it was not asked for.
var errExists = errors.New("exists")

// createAtomic prepares to write path. An existing file is replaced only
// with overwrite (else the error wraps errExists); a read-only one never is,
// nor is a dangling symbolic link or anything but a regular file. A new file
// gets newMode.
func createAtomic(path string, overwrite bool, newMode fs.FileMode) (*atomicFile, error) {
	target, old, err := resolveTarget(path)
	if err != nil {
		return nil, err
	}
	mode := newMode
	if old != nil {
		if !overwrite {
			return nil, fmt.Errorf("%s %w", describeTarget(path, target), errExists)
		}
		if old.Mode().Perm()&0o222 == 0 {
			return nil, fmt.Errorf("%s is read-only (mode %04o): it is not replaced", describeTarget(path, target), old.Mode().Perm())
		}
		if err := writable(target); err != nil {
			return nil, fmt.Errorf("%s: %w", describeTarget(path, target), err)
		}
		mode = old.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return nil, err
	}
	return &atomicFile{File: tmp, target: target, mode: mode, old: old}, nil
}

// resolveTarget follows path's symbolic links to the file they name. old is
// that file, or nil when there is none yet.
func resolveTarget(path string) (target string, old fs.FileInfo, err error) {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return path, nil, nil
	case err != nil:
		return "", nil, err
	case st.Mode()&fs.ModeSymlink != 0:
		target, err = filepath.EvalSymlinks(path)
		if errors.Is(err, fs.ErrNotExist) {
			dest, _ := os.Readlink(path)
			return "", nil, fmt.Errorf("%s is a symbolic link to %s, which does not exist: it is not followed", path, dest)
		}
		if err != nil {
			return "", nil, err
		}
		if st, err = os.Stat(target); err != nil {
			return "", nil, err
		}
	default:
		target = path
	}
	if !st.Mode().IsRegular() {
		return "", nil, fmt.Errorf("%s is not a regular file", describeTarget(path, target))
	}
	return target, st, nil
}

func describeTarget(path, target string) string {
	if path == target {
		return path
	}
	return fmt.Sprintf("%s (a symbolic link to %s)", path, target)
}

// commit puts the written bytes in place of the target.
func (f *atomicFile) commit() error {
	defer os.Remove(f.Name()) // after a failure; gone after the rename
	if f.old != nil {
		keepOwner(f.File, f.old)
	}
	if err := errors.Join(f.Chmod(f.mode), f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), f.target); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(f.target)); err == nil {
		_ = d.Sync() // the rename survives a crash
		d.Close()
	}
	return nil
}

// abort drops the written bytes; the target stays as it was.
func (f *atomicFile) abort() {
	f.Close()
	os.Remove(f.Name())
}
