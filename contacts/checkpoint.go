package contacts

import "context"

// Checkpoint is what a request records around itself: Do the intent, just
// before the request is sent; Undo (nil: nothing to undo) takes it back
// when the request was not made after all (its turn given up, the process's
// liveness in doubt) or was refused unprocessed (a 429).
type Checkpoint struct {
	Do   func(context.Context) error
	Undo func(context.Context) error
}

type checkpointKey struct{}

// WithCheckpoint returns ctx carrying cp, the checkpoint of the request an
// Attempt makes under ctx: the Attempt runs cp.Do after waiting for the
// request's turn and just before sending it, so that what the request is
// about to change is recorded first (an intent written before its request,
// at the time it is sent), and does not make the request when it fails;
// it runs cp.Undo when the request was not made or was refused unprocessed.
// Creator gives each batch its checkpoint this way; a caller of Link gives
// the link's.
func WithCheckpoint(ctx context.Context, cp Checkpoint) context.Context {
	return context.WithValue(ctx, checkpointKey{}, cp)
}

// CheckpointOf returns the checkpoint ctx carries (ok false: none). An
// Attempt must run it (see WithCheckpoint).
func CheckpointOf(ctx context.Context) (cp Checkpoint, ok bool) {
	cp, ok = ctx.Value(checkpointKey{}).(Checkpoint)
	return cp, ok && cp.Do != nil
}
