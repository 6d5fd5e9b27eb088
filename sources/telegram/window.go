package telegram

import (
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/chatexport"
)

// item is one thing the decoder yields: a message, or a bad record
// (err, a *sources.LineError) or a fatal error.
type item struct {
	pos  sources.Position // Line: the file's line where it starts
	id   int64            // the message id (messages only)
	chat *chat
	msg  chatexport.Message
	err  error
	late bool // came after a message with a higher id
}

// The reorder window: how far out of id order a chat's messages may be and
// still be put back in order.
const (
	windowItems = 1024
	windowBytes = 4 << 20
)

// window holds a chat's last messages in file order and gives them out in id
// order: it is a sliding sort, which puts back any message displaced by fewer
// places than it holds. In the usual case (ids ascending) the oldest held
// message is always the smallest and goes first.
type window struct {
	items []*item
	head  int
	bytes int
	maxID int64
	any   bool // a message has been pushed since reset
	late  int  // held messages that came after a higher id
}

func (w *window) len() int { return len(w.items) - w.head }

func (w *window) full() bool { return w.len() > windowItems || w.bytes > windowBytes }

func (w *window) push(it *item) {
	if it.err == nil {
		if w.any && it.id <= w.maxID {
			it.late = true
			w.late++
		}
		if !w.any || it.id > w.maxID {
			w.maxID = it.id
		}
		w.any = true
	}
	w.items = append(w.items, it)
	w.bytes += len(it.pos.Raw)
}

// pop gives out the next item: a bad record where it stands in the file, else
// the message with the smallest id held.
func (w *window) pop() *item {
	front := w.items[w.head]
	k := w.head
	if front.err == nil && w.late > 0 {
		for i := w.head + 1; i < len(w.items); i++ {
			if it := w.items[i]; it.err == nil && it.id < w.items[k].id {
				k = i
			}
		}
	}
	it := w.items[k]
	if k != w.head {
		copy(w.items[w.head+1:k+1], w.items[w.head:k])
	}
	w.items[w.head] = nil
	w.head++
	if it.late {
		w.late--
	}
	w.bytes -= len(it.pos.Raw)
	if w.head > 4096 && w.head*2 > len(w.items) {
		n := copy(w.items, w.items[w.head:])
		clear(w.items[n:])
		w.items, w.head = w.items[:n], 0
	}
	return it
}

// reset starts the next chat.
func (w *window) reset() {
	clear(w.items)
	*w = window{items: w.items[:0]}
}
