// Package metagen writes a Messenger export for benchmarks: one-to-one
// threads in the 2025 layout, files of at most 10,000 messages newest first,
// every name and text mojibake as Meta writes it, some photos (absent, as in
// an export without media), shares, calls and reactions.
package metagen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Owner is the export's owner.
const Owner = "Mária Kovács"

const perFile = 10_000

var lines = []string{
	"Dobrý den, mám dotaz k objednávce č. %d 😊",
	"Здравствуйте! Сколько стоит доставка? Заказ %d",
	"Kdy mi to přijde? Číslo zásilky %d.",
	"Děkuji moc, přeji hezký den! 👍 (%d)",
	"¿Tienen la talla M? Pedido %d",
	"Ok, see you tomorrow at 5 then. Ref %d",
}

// Write writes threads threads of about messages messages each under dir
// and returns how many messages it wrote. One thread in a hundred is fifty
// times longer, split over several message_N.json.
func Write(dir string, threads, messages int) (int, error) {
	total := 0
	base := int64(1_600_000_000_000)
	for t := 0; t < threads; t++ {
		n := messages
		if t%100 == 0 {
			n = messages * 50
		}
		client := fmt.Sprintf("Zákazník %d Novák", t)
		folder := filepath.Join(dir, "your_facebook_activity", "messages", "inbox", fmt.Sprintf("zakaznik%dnovak_%d", t, 10158000000000000+t))
		if err := os.MkdirAll(folder, 0o755); err != nil {
			return total, err
		}
		// Messages oldest first: i; file k (1-based) holds the newest slice.
		files := (n + perFile - 1) / perFile
		for k := 1; k <= files; k++ {
			hi := n - (k-1)*perFile // exclusive
			lo := max(hi-perFile, 0)
			msgs := make([]map[string]any, 0, hi-lo)
			for i := hi - 1; i >= lo; i-- { // newest first
				msgs = append(msgs, message(t, i, client, base+int64(t)*1000+int64(i)*60_000))
			}
			doc := map[string]any{
				"participants":         []any{map[string]any{"name": moji(client)}, map[string]any{"name": moji(Owner)}},
				"messages":             msgs,
				"title":                moji(client),
				"is_still_participant": true,
				"thread_path":          "inbox/" + filepath.Base(folder),
				"magic_words":          []any{},
				"thread_type":          "Regular",
			}
			if err := writeJSON(filepath.Join(folder, fmt.Sprintf("message_%d.json", k)), doc); err != nil {
				return total, err
			}
		}
		total += n
	}
	return total, nil
}

func message(t, i int, client string, ts int64) map[string]any {
	sender := client
	if i%3 == 2 {
		sender = Owner
	}
	m := map[string]any{"sender_name": moji(sender), "timestamp_ms": ts, "is_geoblocked_for_viewer": false}
	switch {
	case i%50 == 7:
		m["photos"] = []any{map[string]any{"uri": fmt.Sprintf("messages/inbox/t%d/photos/%d_%d_n.jpg", t, t, i), "creation_timestamp": ts / 1000}}
	case i%50 == 11:
		m["content"] = "https://www.example.com/produkt/" + fmt.Sprint(i)
		m["share"] = map[string]any{"link": "https://www.example.com/produkt/" + fmt.Sprint(i)}
	case i%100 == 13:
		m["content"] = moji(client + " called you.")
		m["call_duration"] = 61
	default:
		m["content"] = moji(fmt.Sprintf(lines[(t+i)%len(lines)], 1000+i))
	}
	if i%20 == 5 {
		m["reactions"] = []any{map[string]any{"reaction": moji("❤"), "actor": moji(Owner)}}
	}
	return m
}

func writeJSON(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// moji writes s as Meta does: each UTF-8 byte as its own code point.
func moji(s string) string {
	r := make([]rune, len(s))
	for i := 0; i < len(s); i++ {
		r[i] = rune(s[i])
	}
	return string(r)
}
