package hosted

import "errors"

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("hosted source is already running")

// Reasons a push to the followed branch fails, as the push's report gives
// them ("! [remote rejected] main -> main (REASON)"); the "remote:" lines
// above say more.
var (
	// ErrRefused: the commit failed the check; the branch did not move.
	ErrRefused = errors.New("kiln refused the commit")
	// ErrDeleteBranch: the followed branch cannot be deleted.
	ErrDeleteBranch = errors.New("the deployed branch cannot be deleted")
	// ErrPushOption: an unknown kiln.* push option.
	ErrPushOption = errors.New("unknown kiln push option")
	// ErrNotApplied: the branch moved but the sync failed or was not
	// recorded in time.
	ErrNotApplied = errors.New("the branch moved, but the sync failed")
	// ErrNotHealthy: the branch moved and the sync applied, but the
	// rollout failed or did not finish within the push wait.
	ErrNotHealthy = errors.New("the branch moved, but the deploy is not healthy")
)
