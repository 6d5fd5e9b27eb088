// Command kommo-import imports chat history from another messenger into Kommo
// through the Chats API. See README.md, or run kommo-import --help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kommo-import/kommo-import/cmd/kommo-import/cli"
)

func main() {
	env := cli.Env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cli.Run(context.Background(), os.Args[1:], env, signalChannel())
	os.Exit(cli.ExitCode(err, env.Stderr))
}

func signalChannel() <-chan os.Signal {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch
}
