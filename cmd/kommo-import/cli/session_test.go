package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/sources"
)

// Run and retry build their importer configuration in one place: a sending
// flag reaches the importer from either command.
func TestSessionConfigFromTheSendingFlags(t *testing.T) {
	c := newCLIEnv(t)
	for _, cmd := range []string{"run", "retry"} {
		t.Run(cmd, func(t *testing.T) {
			var errOut bytes.Buffer
			env := Env{Getenv: func(k string) string { return c.vars[k] }, Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errOut}
			fs := newFlagSet(env, cmd, "", "")
			f := sessionFlags{send: &sendFlags{}}
			f.register(fs, env)
			require.NoError(t, parseFlags(fs, env, []string{"--rate", "3.5", "--workers", "3", "--reconcile-wait", "2s",
				"--max-attempts", "4", "--db-outage-limit", "7s", "--request-timeout", "5s", "--progress", "none"}))
			require.NoError(t, f.check())
			_, stop := newStopper(context.Background(), nil, env.Stderr, true)
			defer stop.close()
			inv := &invocation{env: env, stop: stop}
			s, err := openSession(context.Background(), inv, &f, func(context.Context, *pgxpool.Pool) (runTarget, error) {
				return runTarget{Run: "r", ScopeID: cliScope, Source: sources.Identity{Label: "jsonl:x"}, Notify: importer.NotifyNewestIncoming}, nil
			})
			require.NoError(t, err)
			defer s.close()
			cfg := s.cfg
			cfg.Logger = nil
			require.Equal(t, importer.Config{Run: "r", ScopeID: cliScope, Source: sources.Identity{Label: "jsonl:x"}, Notify: importer.NotifyNewestIncoming,
				Rate: 3.5, Workers: 3, ReconcileWait: 2 * time.Second, MaxAttempts: 4, DBOutageLimit: 7 * time.Second, RequestTimeout: 5 * time.Second}, cfg)
			require.Equal(t, "r", inv.snapshot().run)
			require.Equal(t, c.vars[envAPIURL], inv.snapshot().apiURL)
		})
	}
}
