package cli

import (
	"context"
	"errors"
	"os"
)

// Placeholders until each command lands; each is replaced by its own file.

func runRun(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	return errors.New("run: not built yet")
}

func runValidate(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	return errors.New("validate: not built yet")
}

func runStatus(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	return errors.New("status: not built yet")
}

func runRuns(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	return errors.New("runs: not built yet")
}

func runMigrate(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	return errors.New("migrate: not built yet")
}
