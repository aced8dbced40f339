package job

import "errors"

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("job: Run called twice")
