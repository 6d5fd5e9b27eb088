package contacts

import "context"

type checkpointKey struct{}

// WithCheckpoint returns ctx carrying fn, the checkpoint of the request an
// Attempt makes under ctx: the Attempt runs fn after waiting for the
// request's turn and just before sending it, so that what the request is
// about to change is recorded first (an intent written before its request,
// at the time it is sent), and does not make the request when fn fails.
// Creator gives each batch its checkpoint this way; a caller of Link gives
// the link's.
func WithCheckpoint(ctx context.Context, fn func(context.Context) error) context.Context {
	return context.WithValue(ctx, checkpointKey{}, fn)
}

// CheckpointOf returns the checkpoint ctx carries, nil for none. An
// Attempt must run it (see WithCheckpoint).
func CheckpointOf(ctx context.Context) func(context.Context) error {
	fn, _ := ctx.Value(checkpointKey{}).(func(context.Context) error)
	return fn
}
