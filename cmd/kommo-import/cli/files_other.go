//go:build !unix

package cli

import (
	"io/fs"
	"os"
)

func writable(string) error { return nil }

func keepOwner(*os.File, fs.FileInfo) {}
