package worker

import (
	"context"
	"time"
)

// WriteTimeout bounds each API write a controller makes through
// WriteContext.
const WriteTimeout = 30 * time.Second

// WriteContext is the context of one API write. It is detached from ctx:
// a write the client gave up on when Run stopped could still land after a
// successor listed the objects, and the successor would write again (one
// Pod too many, a second Pod on a Node). Run waits for these writes
// instead, each bounded by WriteTimeout.
func WriteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), WriteTimeout)
}
