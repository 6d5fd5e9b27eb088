package cli

import (
	"context"
	"errors"
	"os"
)

// Placeholders until each command lands; each moves to its own file.

func runConnect(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	return errors.New("connect: not built yet")
}
