package join

import "errors"

// ErrUnreachable is returned (wrapped) by Join when no server answered:
// worth retrying later, unlike a CA that does not match the token or a
// refused secret, which no retry mends.
var ErrUnreachable = errors.New("no server answered")
