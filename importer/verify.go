package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// HistoryReader is what verification needs of the Chats API client.
type HistoryReader interface {
	History(ctx context.Context, chatID string, offset, limit int) ([]chatsapi.HistoryMessage, error)
}

// MaxVerifyIssues caps each list of a VerifyReport; the counts stay exact.
const MaxVerifyIssues = 1000

// VerifyIssue is one msgid whose presence in its chat's history is wrong.
type VerifyIssue struct {
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"`
	ChatID         string `json:"chat_id,omitempty"`
	Count          int    `json:"count"`           // times the history holds it (distinct Kommo message ids)
	State          State  `json:"state,omitempty"` // the database's state, for Unexpected
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Run                string `json:"run"`
	Sample             int    `json:"sample,omitempty"`    // conversations asked for; 0: all
	ConversationsTotal int64  `json:"conversations_total"` // of the run with sent messages
	Conversations      int64  `json:"conversations"`       // checked
	Checked            int64  `json:"messages_checked"`    // sent msgids looked for
	Found              int64  `json:"found_once"`
	MissingCount       int64  `json:"missing_count"`
	DuplicatedCount    int64  `json:"duplicated_count"`
	UnexpectedCount    int64  `json:"unexpected_count"`
	// Missing: recorded as sent, absent from the chat's history.
	Missing []VerifyIssue `json:"missing"`
	// Duplicated: in the chat's history more than once.
	Duplicated []VerifyIssue `json:"duplicated"`
	// Unexpected: in the chat's history although the database holds it as
	// pending or failed: sending it (run, retry) would duplicate it.
	Unexpected []VerifyIssue `json:"unexpected"`
	Truncated  bool          `json:"truncated,omitempty"` // some list hit MaxVerifyIssues
	Requests   int64         `json:"http_requests"`       // history requests, retries included
	Elapsed    float64       `json:"elapsed_seconds"`
}

// Clean reports whether every checked message is in its chat exactly once
// and nothing unsent is there.
func (r *VerifyReport) Clean() bool {
	return r.MissingCount == 0 && r.DuplicatedCount == 0 && r.UnexpectedCount == 0
}

// VerifyConfig tunes VerifyWith. Zero values take the defaults noted.
type VerifyConfig struct {
	Run    string // required
	Sample int    // check a random sample of this many conversations; 0: all
	// Rate is requests/s for the scope, shared with the runs sending to it;
	// default 5; below 0: unlimited.
	Rate         float64
	MaxAttempts  int           // attempts per request on 5xx and network errors; default 8
	BackoffBase  time.Duration // first retry delay; default 1s
	BackoffMax   time.Duration // default 60s
	DefaultPause time.Duration // on a 429 without retry-after; default 60s
	Logger       *slog.Logger
}

// verifyBatch is how many conversations are read from the database at once
// when all are checked.
const verifyBatch = 500

type verifyConv = store.VerifyConv

type verifyMsg struct {
	state State
	msec  int64
	seen  map[string]struct{} // Kommo message ids holding this msgid
}

// VerifyWith reads back the chat history of each conversation of the run
// that has sent messages (or of a random sample of them) and checks that
// each sent msgid appears there exactly once, as message.client_id. Pages
// shifted by messages arriving meanwhile are harmless: a message is counted
// once per distinct Kommo message id. It returns ErrNoRun for an unknown
// run, a *StopError when the API refuses the scope, and ErrInterrupted
// (wrapped) when ctx ends or the API keeps failing; with an error, the report
// holds what was checked until then.
func VerifyWith(ctx context.Context, pool *pgxpool.Pool, api HistoryReader, cfg VerifyConfig) (*VerifyReport, error) {
	if cfg.Run == "" {
		return nil, errors.New("verify: Run is required")
	}
	retryDefaults(&cfg.MaxAttempts, &cfg.BackoffBase, &cfg.BackoffMax, &cfg.DefaultPause)
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	q := store.New(pool)
	scope, err := q.RunScope(ctx, cfg.Run)
	if isNoRows(err) {
		return nil, fmt.Errorf("%w %q", ErrNoRun, cfg.Run)
	} else if err != nil {
		return nil, fmt.Errorf("verify %s: %w", cfg.Run, err)
	}
	v := &verifier{cfg: cfg, q: q, api: api, rep: &VerifyReport{Run: cfg.Run, Sample: cfg.Sample},
		att: &attempter{pacer: newPacer(q, wallClock{}, scope, cfg.Rate, noDBWait), log: cfg.Logger,
			policy: retryPolicy{backoffBase: cfg.BackoffBase, backoffMax: cfg.BackoffMax, defaultPause: cfg.DefaultPause}}}
	if v.rep.ConversationsTotal, err = q.CountVerifyConversations(ctx, cfg.Run); err != nil {
		return nil, fmt.Errorf("verify %s: %w", cfg.Run, err)
	}
	if cfg.Sample > 0 {
		var convs []verifyConv
		convs, err = q.VerifySample(ctx, cfg.Run, cfg.Sample)
		if err == nil {
			err = v.checkAll(ctx, convs)
		}
	} else {
		after := ""
		for err == nil {
			var convs []verifyConv
			convs, err = q.VerifyConversations(ctx, cfg.Run, after, verifyBatch)
			if err != nil || len(convs) == 0 {
				break
			}
			err = v.checkAll(ctx, convs)
			after = convs[len(convs)-1].ID
		}
	}

	v.rep.Elapsed = time.Since(started).Seconds()
	for _, list := range [][]VerifyIssue{v.rep.Missing, v.rep.Duplicated, v.rep.Unexpected} {
		slices.SortFunc(list, func(a, b VerifyIssue) int {
			return cmp.Or(cmp.Compare(a.ConversationID, b.ConversationID), cmp.Compare(a.MsgID, b.MsgID))
		})
	}
	return v.rep, err
}

type verifier struct {
	cfg VerifyConfig
	q   *store.Queries
	api HistoryReader // unpaced: every attempt takes a pacer slot first
	att *attempter
	rep *VerifyReport
}

func (v *verifier) checkAll(ctx context.Context, convs []verifyConv) error {
	for _, c := range convs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		if err := v.check(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// check verifies one conversation: its messages of the run in memory (ids
// only), then its chat's history page by page, newest first.
func (v *verifier) check(ctx context.Context, c verifyConv) error {
	list, err := v.q.VerifyMessages(ctx, v.cfg.Run, c.ID)
	if err != nil {
		return fmt.Errorf("verify conversation %s: %w", c.ID, err)
	}
	msgs := make(map[string]*verifyMsg, len(list))
	var oldest int64 = 1<<63 - 1
	for _, m := range list {
		msgs[m.MsgID] = &verifyMsg{state: m.State, msec: m.Msec}
		oldest = min(oldest, m.Msec)
	}
	v.rep.Conversations++

	if c.ChatID != "" {
		if err := v.readHistory(ctx, c, msgs, oldest); err != nil {
			return err
		}
	}
	for id, m := range msgs {
		n := len(m.seen)
		issue := VerifyIssue{MsgID: id, ConversationID: c.ID, ChatID: c.ChatID, Count: n}
		switch {
		case m.state == StateSent:
			v.rep.Checked++
			switch {
			case n == 1:
				v.rep.Found++
			case n == 0:
				v.rep.MissingCount++
				v.rep.Missing = v.add(v.rep.Missing, issue)
			default:
				v.rep.DuplicatedCount++
				v.rep.Duplicated = v.add(v.rep.Duplicated, issue)
			}
		case n > 0 && m.state != StateSending:
			// An in-doubt ("sending") message found here is what resuming
			// the run reconciles; a pending or failed one is not expected.
			issue.State = m.state
			v.rep.UnexpectedCount++
			v.rep.Unexpected = v.add(v.rep.Unexpected, issue)
		}
	}
	return nil
}

func (v *verifier) add(list []VerifyIssue, issue VerifyIssue) []VerifyIssue {
	if len(list) >= MaxVerifyIssues {
		v.rep.Truncated = true
		return list
	}
	return append(list, issue)
}

func (v *verifier) readHistory(ctx context.Context, c verifyConv, msgs map[string]*verifyMsg, oldest int64) error {
	for offset := 0; ; offset += historyPage {
		page, err := v.history(ctx, c.ChatID, offset)
		if err != nil {
			return fmt.Errorf("verify conversation %s (chat %s): %w", c.ID, c.ChatID, err)
		}
		for _, h := range page {
			m, ok := msgs[h.Message.ClientID]
			if !ok {
				continue
			}
			if m.seen == nil {
				m.seen = map[string]struct{}{}
			}
			m.seen[h.Message.ID] = struct{}{}
		}
		// Newest first: once a page reaches messages older than every one
		// of ours, no copy of ours can follow.
		if len(page) < historyPage || page[len(page)-1].MsecTimestamp < oldest {
			return nil
		}
	}
}

// history reads one page in a paced attempt: a 429 pauses the scope, a
// retryable failure is retried after its backoff (verification is
// sequential: it sleeps), anything else ends it.
func (v *verifier) history(ctx context.Context, chatID string, offset int) ([]chatsapi.HistoryMessage, error) {
	var page []chatsapi.HistoryMessage
	for failures := 0; ; failures++ {
		d, err := v.att.attempt(ctx, nil, request{do: func(ctx context.Context) (err error) {
			v.rep.Requests++
			page, err = v.api.History(ctx, chatID, offset, historyPage)
			return err
		}}, failures)
		if err != nil {
			return nil, err
		}
		switch d.act {
		case 0:
			return page, nil
		case actAbort:
			return nil, interrupted(CauseSignal, "", d.err)
		case actStop:
			return nil, d.err
		case actFail:
			return nil, d.api
		}
		if failures+1 >= v.cfg.MaxAttempts {
			return nil, interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at reading chat %s", failures+1, chatID), d.api)
		}
		if err := v.att.sleep(ctx, nil, d.after); err != nil {
			return nil, err
		}
	}
}
