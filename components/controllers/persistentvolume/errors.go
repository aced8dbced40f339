package persistentvolume

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("persistentvolume: Run called twice")
