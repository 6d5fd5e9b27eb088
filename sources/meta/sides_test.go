package meta

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// Who is the company in a thread: --self, then the title rule, then the
// owner learned from the other threads; and what is skipped as a group.
func TestSides(t *testing.T) {
	write := func(t *testing.T, root, folder string, thread map[string]any) {
		writeJSON(t, root, "messages/inbox/"+folder+"/message_1.json", thread)
	}
	t.Run("title rule", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "bob_1111111", dyi("Bob", []string{"Bob", "Owner"}, m("Bob", 1, "hi"), m("Owner", 2, "hello")))
		res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, Users: sampleUsersFor(t, "Owner")})
		require.Equal(t, []string{`fb-1111111 in  Bob: "hi"`, `fb-1111111 out Owner: "hello"`}, briefs(res))
	})
	t.Run("--self wins over the title", func(t *testing.T) {
		root := t.TempDir()
		// The owner's page is named like the client's title: only --self can tell.
		write(t, root, "bob_1111111", dyi("Owner", []string{"Bob", "Owner"}, m("Bob", 1, "hi"), m("Owner", 2, "hello")))
		res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, Self: []string{"  owner "}, Users: sampleUsersFor(t, "Owner")})
		require.Equal(t, []string{`fb-1111111 in  Bob: "hi"`, `fb-1111111 out Owner: "hello"`}, briefs(res))
	})
	t.Run("learned owner, thread read again at the end", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "aaa_1111111", dyi("Nickname", []string{"Alice", "Owner"}, m("Alice", 1, "first"), m("Owner", 2, "reply")))
		write(t, root, "bob_2222222", dyi("Bob", []string{"Bob", "Owner"}, m("Bob", 3, "hi")))
		res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, Users: sampleUsersFor(t, "Whoever")})
		// --users names no participant, so it does not decide, but --bot-id-less
		// outgoing messages need a user: map the owner through the learned name.
		require.Equal(t, []string{`fb-2222222 in  Bob: "hi"`, `fb-1111111 in  Alice: "first"`}, briefs(res))
		require.Len(t, res.errs, 1)
		require.Equal(t, "sender.ref_id", res.errs[0].Field, "Owner's reply is outgoing")
	})
	t.Run("nobody can tell", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "aaa_1111111", dyi("Nickname", []string{"Alice", "Owner"}, m("Alice", 1, "first")))
		res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
		require.Empty(t, res.recs)
		require.Len(t, res.errs, 1)
		require.Equal(t, "participants", res.errs[0].Field)
		require.ErrorContains(t, res.errs[0], `messages/inbox/aaa_1111111: cannot tell which of ["Alice" "Owner"] is the export's owner (the thread's title "Nickname" names neither alone): give --self NAME`)
		require.Equal(t, map[string]int64{SkipUnknownOwner: 1}, res.skipped)
	})
	t.Run("one participant left", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, "bob_1111111", dyi("Bob", []string{"Owner"}, m("Bob", 1, "hi"), m("Owner", 2, "hello")))
		res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root, Self: []string{"Owner"}, Users: sampleUsersFor(t, "Owner")})
		require.Equal(t, []string{`fb-1111111 in  Bob: "hi"`, `fb-1111111 out Owner: "hello"`}, briefs(res))
	})
	t.Run("groups", func(t *testing.T) {
		root := t.TempDir()
		g := dyi("Two of us", []string{"Bob", "Owner"}, m("Bob", 1, "hi"))
		g["thread_type"] = "RegularGroup" // a group down to two members is still a group
		write(t, root, "group_1111111", g)
		write(t, root, "three_2222222", dyi("Three", []string{"Bob", "Owner", "Carol"}, m("Bob", 1, "hi")))
		p := dyi("Bob", []string{"Bob", "Owner"}, m("Bob", 1, "a request"))
		p["thread_type"] = "Pending" // Instagram's message request: one to one
		write(t, root, "bob_3333333", p)
		res := readAll(t, sources.Spec{Kind: KindInstagram, Path: root})
		require.Equal(t, []string{`ig-3333333 in  Bob: "a request"`}, briefs(res))
		require.Equal(t, map[string]int64{SkipGroupChat: 2, SkipChatMessage: 2}, res.skipped)
	})
}

// Calls, unsent and system messages are skipped, reactions dropped, each
// counted; a message with nothing to show is skipped as empty.
func TestSkippedKinds(t *testing.T) {
	root := t.TempDir()
	writeJSON(t, root, "messages/inbox/bob_1111111/message_1.json", dyi("Bob", []string{"Bob", "Me"},
		m("Bob", 1, "Bob started a call.", "type", "Call", "call_duration", 61),
		m("Bob", 2, "You missed a call from Bob.", "type", "Call", "call_duration", 0, "missed", true),
		m("Bob", 3, "Bob unsent a message", "is_unsent", true),
		m("Bob", 4, "Bob added Carol.", "type", "Subscribe"),
		m("Bob", 5, "Carol left.", "type", "Unsubscribe"),
		m("Bob", 6, "kept", "reactions", []any{map[string]any{"reaction": "👍", "actor": "Me"}, map[string]any{"reaction": "😂", "actor": "Bob"}}),
		m("Bob", 7, "", "is_geoblocked_for_viewer", true),
		m("Bob", 8, "   "),
		m("Bob", 9, "", "share", map[string]any{"link": "https://example.com/a"}, "type", "Share"),
	))
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Equal(t, []string{`fb-1111111 in  Bob: "kept"`, `fb-1111111 in  Bob: "https://example.com/a" +shared https://example.com/a`}, briefs(res))
	require.Equal(t, map[string]int64{SkipCall: 2, SkipUnsent: 1, SkipServiceMessage: 2, SkipReaction: 2, SkipUnsupported: 2}, res.skipped)
}
