//go:build unix

package cli

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// writable reports whether this user may write path (root may write
// anything; createAtomic refuses read-only files by their mode first).
func writable(path string) error {
	if err := syscall.Access(path, 2 /* W_OK */); err != nil {
		return errors.New("not writable by this user: it is not replaced")
	}
	return nil
}

// keepOwner gives the replacement the owner of the file it replaces, where
// this process may (as root).
func keepOwner(f *os.File, old fs.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
}
