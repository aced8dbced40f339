package gitserver_test

import (
	"context"
	"log"
	"net/http"
	"path/filepath"

	"kiln.dev/kiln/sources/hosted/gitserver"
)

// refuseTags is Hooks that accepts every push but tags.
type refuseTags struct{}

func (refuseTags) Check(_ context.Context, p *gitserver.Push, u gitserver.Update) error {
	if u.Name.IsTag() {
		p.Progress.Line("tags are not accepted here")
		return gitserver.ErrRefName
	}
	return nil
}

func (refuseTags) Apply(context.Context, *gitserver.Push, gitserver.Update) error  { return nil }
func (refuseTags) Follow(context.Context, *gitserver.Push, gitserver.Update) error { return nil }

// Serve one repository; `git clone http://localhost:8080/git/app.git`
// then works with the git CLI.
func Example() {
	dir := filepath.Join("/var/lib/example", "app.git")
	if err := gitserver.Init(dir, "main"); err != nil {
		log.Fatal(err)
	}
	srv, err := gitserver.New(gitserver.Config{
		Repositories: map[string]gitserver.Repository{"app": {Dir: dir, Hooks: refuseTags{}}},
		Authorize: func(r *http.Request, repo string, write bool) (string, error) {
			if r.Header.Get("Authorization") != "Bearer s3cret" {
				return "", gitserver.ErrUnauthenticated
			}
			return "ada", nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gitserver.PathPrefix, srv)
	log.Fatal(http.ListenAndServe("localhost:8080", mux))
}
