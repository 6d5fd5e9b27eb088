// Command seqimport is the simplest importer that is still exactly once: it
// reads a JSONL export and, one message after another, checkpoints it in
// PostgreSQL, signs and sends it, and records it sent. The bench scripts
// measure kommo-import against it (scripts/bench-send.sh, scenario spend):
// what the worker pool, the shared schedule and the grouped checkpoints buy
// over sending in a loop. Not for real use: no rate limit, no retries, no
// look-ups, no loud message.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/wire"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "seqimport:", err)
		os.Exit(1)
	}
}

func run() error {
	src := flag.String("source", "", "JSONL `FILE`")
	api := flag.String("api-url", "", "Chats API base URL")
	scope := flag.String("scope-id", "", "scope")
	flag.Parse()
	ctx := context.Background()
	db, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		return err
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS seqimport (msgid text PRIMARY KEY, state text NOT NULL)`); err != nil {
		return err
	}
	secret := signer.Secret(os.Getenv("KOMMO_CHANNEL_SECRET"))
	f, err := os.Open(*src)
	if err != nil {
		return err
	}
	defer f.Close()
	path := "/v2/origin/custom/" + *scope
	client := &http.Client{Timeout: 30 * time.Second}
	in := bufio.NewScanner(f)
	in.Buffer(make([]byte, 1<<20), 32<<20)
	start, n := time.Now(), 0
	for in.Scan() {
		var p wire.Payload
		if err := json.Unmarshal(in.Bytes(), &p); err != nil {
			return err
		}
		p.Silent = true
		tag, err := db.Exec(ctx, `INSERT INTO seqimport (msgid, state) VALUES ($1, 'sending') ON CONFLICT DO NOTHING`, p.MsgID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			continue // sent, or in doubt, before
		}
		body, err := json.Marshal(wire.Event{EventType: wire.EventNewMessage, Payload: p})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*api, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		signer.Sign(http.MethodPost, path, body, secret, time.Now()).Apply(req.Header)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("message %s: %s", p.MsgID, resp.Status)
		}
		if _, err := db.Exec(ctx, `UPDATE seqimport SET state = 'sent' WHERE msgid = $1`, p.MsgID); err != nil {
			return err
		}
		n++
	}
	if err := in.Err(); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("{\"sent\": %d, \"elapsed_seconds\": %.3f, \"rate\": %.2f}\n", n, d.Seconds(), float64(n)/d.Seconds())
	return nil
}
