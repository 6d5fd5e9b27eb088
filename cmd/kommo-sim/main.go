// Command kommo-sim is a local, strict Kommo Chats API simulator for tests,
// the demo and dry-run rehearsals of a migration. Run kommo-sim --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "kommo-sim:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "kommo-sim:", err)
		os.Exit(1)
	}
}
