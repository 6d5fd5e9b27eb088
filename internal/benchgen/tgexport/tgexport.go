// Package tgexport writes synthetic Telegram Desktop exports for benchmarks
// and memory checks (internal/benchgen -format telegram, the reader's
// benchmarks).
package tgexport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Write writes a Telegram Desktop whole-account export of n messages
// in convs personal chats (plus two groups, skipped by the reader), laid out
// as Telegram Desktop writes it (one space of indentation a level), with
// what real chats hold: both directions, text as a string and as an array
// with a link, text_entities, replies, edits, service messages, photos left
// out of the export. Chats are written one after another, each in id order.
func Write(w *bufio.Writer, seed uint64, n, convs int) error {
	r := rand.New(rand.NewPCG(seed, 3))
	const self = 5550001
	words := strings.Fields("hello order delivery tomorrow price invoice address спасибо размер 👍 thanks when can you please send the tracking number ok great")
	sentence := func() string {
		k := 3 + r.IntN(25)
		parts := make([]string, k)
		for i := range parts {
			parts[i] = words[r.IntN(len(words))]
		}
		return strings.Join(parts, " ")
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	base := time.Date(2021, 1, 1, 9, 0, 0, 0, time.UTC).Unix()

	fmt.Fprintf(w, "{\n \"about\": \"Here is the data you requested.\",\n \"personal_information\": {\n  \"user_id\": %d,\n  \"first_name\": \"Olga\",\n  \"last_name\": \"Support\",\n  \"phone_number\": \"+7 900 555 00 01\"\n },\n", self)
	w.WriteString(" \"contacts\": {\n  \"about\": \"This is your contact list.\",\n  \"list\": [")
	for c := 0; c < convs; c += 2 {
		if c > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, "\n   {\n    \"user_id\": %d,\n    \"first_name\": \"Client\",\n    \"last_name\": \"%d\",\n    \"phone_number\": \"+7 999 %03d %02d %02d\",\n    \"date\": \"2020-01-01T10:00:00\",\n    \"date_unixtime\": \"1577872800\"\n   }",
			1000000+c, c, c%1000, c%100, (c/100)%100)
	}
	w.WriteString("\n  ]\n },\n \"chats\": {\n  \"about\": \"This page lists all chats from this export.\",\n  \"list\": [")
	group := func(id int) {
		fmt.Fprintf(w, "\n   {\n    \"name\": \"Team %d\",\n    \"type\": \"private_supergroup\",\n    \"id\": %d,\n    \"messages\": [\n     {\n      \"id\": 1,\n      \"type\": \"message\",\n      \"date\": \"2021-01-01T09:00:00\",\n      \"date_unixtime\": \"1609491600\",\n      \"from\": \"Olga Support\",\n      \"from_id\": \"user%d\",\n      \"text\": \"stock count on Friday\",\n      \"text_entities\": []\n     }\n    ]\n   },", id, id, self)
	}
	group(1700000001)
	written := 0
	for c := 0; c < convs; c++ {
		per := n / convs
		if c < n%convs {
			per++
		}
		peer := 1000000 + c
		if c > 0 {
			w.WriteByte(',')
		}
		fmt.Fprintf(w, "\n   {\n    \"name\": \"Client %d\",\n    \"type\": \"personal_chat\",\n    \"id\": %d,\n    \"messages\": [", c, peer)
		t := base + int64(c)
		for i := 1; i <= per; i++ {
			if i > 1 {
				w.WriteByte(',')
			}
			t += int64(1 + r.IntN(600))
			from, fromID := fmt.Sprintf("Client %d", c), peer
			if r.IntN(2) == 0 {
				from, fromID = "Olga Support", self
			}
			date := time.Unix(t, 0).UTC().Format("2006-01-02T15:04:05")
			fmt.Fprintf(w, "\n     {\n      \"id\": %d,\n      \"type\": \"%s\",\n      \"date\": \"%s\",\n      \"date_unixtime\": \"%d\",\n", i, map[bool]string{true: "service", false: "message"}[i%50 == 0], date, t)
			if i%50 == 0 {
				fmt.Fprintf(w, "      \"actor\": %s,\n      \"actor_id\": \"user%d\",\n      \"action\": \"phone_call\",\n      \"discard_reason\": \"missed\",\n      \"text\": \"\",\n      \"text_entities\": []\n     }", q(from), fromID)
				written++
				continue
			}
			if i%100 == 7 {
				fmt.Fprintf(w, "      \"edited\": \"%s\",\n      \"edited_unixtime\": \"%d\",\n", date, t+60)
			}
			fmt.Fprintf(w, "      \"from\": %s,\n      \"from_id\": \"user%d\",\n", q(from), fromID)
			if i%20 == 3 && i > 1 {
				fmt.Fprintf(w, "      \"reply_to_message_id\": %d,\n", i-1)
			}
			if i%40 == 11 {
				w.WriteString("      \"photo\": \"(File not included. Change data exporting settings to download.)\",\n      \"width\": 1280,\n      \"height\": 960,\n")
			}
			text := sentence()
			if i%10 == 5 {
				link := fmt.Sprintf("https://shop.example.com/orders/%d", i)
				fmt.Fprintf(w, "      \"text\": [\n       %s,\n       {\n        \"type\": \"link\",\n        \"text\": %s\n       }\n      ],\n      \"text_entities\": [\n       {\n        \"type\": \"plain\",\n        \"text\": %s\n       },\n       {\n        \"type\": \"link\",\n        \"text\": %s\n       }\n      ]\n     }",
					q(text+" "), q(link), q(text+" "), q(link))
			} else {
				fmt.Fprintf(w, "      \"text\": %s,\n      \"text_entities\": [\n       {\n        \"type\": \"plain\",\n        \"text\": %s\n       }\n      ]\n     }", q(text), q(text))
			}
			written++
		}
		w.WriteString("\n    ]\n   }")
	}
	w.WriteString("\n  ]\n },\n \"left_chats\": {\n  \"about\": \"This page lists all supergroups and channels from this export that you've left.\",\n  \"list\": []\n }\n}\n")
	if written != n {
		return fmt.Errorf("wrote %d messages, not %d", written, n)
	}
	return nil
}
