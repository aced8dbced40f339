package gitserver

import "errors"

// Errors Config.Authorize returns (wrapped or not) to choose the answer.
var (
	// ErrUnauthenticated answers 401 with a Basic challenge, so that git
	// asks its credential helper.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrForbidden answers 403.
	ErrForbidden = errors.New("forbidden")
)

// ErrKeep, returned by Hooks.Check, reports the update "ok" without
// moving the ref: a dry run that passed. Apply and Follow are not called
// for it.
var ErrKeep = errors.New("checked, ref not moved")

// Reasons an update is refused, as the report's "ng" line gives them (git
// shows them as "! [remote rejected] main -> main (REASON)").
var (
	// ErrFetchFirst refuses an update whose old value is not the ref's
	// value: another push moved it since the client looked.
	ErrFetchFirst = errors.New("fetch first")
	// ErrMissingObjects refuses an update whose new tip, or an object it
	// reaches, is not in the repository.
	ErrMissingObjects = errors.New("missing necessary objects")
	// ErrNotCommit refuses a branch update to an object that is not a
	// commit.
	ErrNotCommit = errors.New("not a commit")
	// ErrRefName refuses an update of a ref outside refs/heads and
	// refs/tags, or with a name git would refuse.
	ErrRefName = errors.New("funny refname")
	// ErrAtomic refuses the other updates of an atomic push when one
	// fails.
	ErrAtomic = errors.New("atomic push failed")
	// ErrShared refuses an update that could not be recorded in the
	// shared record (the datastore did not answer): no server has it.
	ErrShared = errors.New("cannot record the push; try again")
)
