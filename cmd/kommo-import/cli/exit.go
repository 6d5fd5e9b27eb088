package cli

import (
	"errors"
	"fmt"
	"io"
)

// Exit codes. They are part of the interface: scripts and schedulers branch on them.
const (
	ExitOK          = 0
	ExitFatal       = 1
	ExitUsage       = 2
	ExitIncomplete  = 3 // finished with failed messages or rejected records
	ExitInterrupted = 4 // stopped early; the same command resumes
	ExitOperator    = 5 // stopped until an operator acts (block, signature, clock, unknown scope)
)

// exitError carries an exit code and an optional hint ("Try: ...").
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errHelp is returned after --help was printed: exit 0, print nothing more.
var errHelp = errors.New("help printed")

func usageError(err error) error { return &exitError{code: ExitUsage, err: err} }

func withHint(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// ExitCode maps err to the process exit code, printing it (and its hint) to w.
func ExitCode(err error, w io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return ExitOK
	}
	code := ExitFatal
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(w, "kommo-import: %v\n", err)
	if ee != nil && ee.hint != "" {
		fmt.Fprintf(w, "Try: %s\n", ee.hint)
	}
	return code
}
