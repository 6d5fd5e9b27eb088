package cli

import (
	"context"
	"errors"
	"os"
)

// Placeholders until each command lands; each moves to its own file.

func runReport(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	return errors.New("report: not built yet")
}

func runRetry(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	return errors.New("retry: not built yet")
}

func runVerify(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	return errors.New("verify: not built yet")
}

func runConnect(ctx context.Context, env Env, args []string, _ <-chan os.Signal) error {
	return errors.New("connect: not built yet")
}
