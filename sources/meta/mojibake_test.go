package meta

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestRepair(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ascii", "hello", "hello"},
		{"empty", "", ""},
		{"latin", mojibake("café"), "café"},
		{"czech", mojibake("Mária Kovács – č. 1042"), "Mária Kovács – č. 1042"},
		{"cyrillic", mojibake("Здравствуйте"), "Здравствуйте"},
		{"emoji", mojibake("👍🏽 ❤️"), "👍🏽 ❤️"},
		{"flag", mojibake("🇪🇸"), "🇪🇸"},
		{"a real é alone is no mojibake", "café", "café"},
		{"a rune above U+00FF: not mojibake", "“quoted” Ã©", "“quoted” Ã©"},
		{"bytes that are not UTF-8 stay", "\u00c3\u0028", "\u00c3\u0028"},
		{"a cut sequence stays", "caf\u00c3", "caf\u00c3"},
		{"NBSP alone stays", "a\u00a0b", "a\u00a0b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := repair(tc.in)
			require.Equal(t, tc.want, got)
			require.True(t, utf8.ValidString(got))
			require.Equal(t, got, repair(got), "repairing twice changes nothing more")
		})
	}
}

func BenchmarkRepair(b *testing.B) {
	ascii, moji := "Hello, how are you doing today? See you at 5.", mojibake("Dobrý den, mám dotaz k objednávce č. 1042 😊")
	b.ReportAllocs()
	for b.Loop() {
		repair(ascii)
		repair(moji)
	}
}
