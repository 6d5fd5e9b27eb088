// Command kommo-import imports chat history from another messenger into Kommo
// through the Chats API. See README.md, or run kommo-import --help.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/kommo-import/kommo-import/cmd/kommo-import/cli"
)

// defaultMemoryLimit is a soft heap limit: an import runs for hours beside
// other services, and the garbage collector may otherwise let the heap grow
// to twice what is live. GOMEMLIMIT overrides it.
const defaultMemoryLimit = 96 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	env := cli.Env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cli.Run(context.Background(), os.Args[1:], env, cli.NotifySignals())
	os.Exit(cli.ExitCode(err, env.Stderr))
}
