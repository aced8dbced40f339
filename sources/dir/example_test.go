package dir_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
)

func Example() {
	root, err := os.MkdirTemp("", "kiln-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.WriteFile(filepath.Join(root, "app.yaml"), []byte("kind: Namespace\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	src, err := dir.New(dir.Config{Name: "local", Path: root})
	if err != nil {
		log.Fatal(err)
	}
	// In a program, ctx comes from main's signal handling; an example
	// has no test context to borrow.
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan sources.Result)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, results) }()

	// The first Result comes at once; later ones follow changes.
	res := <-results
	if res.Err != nil {
		log.Fatal(res.Err) // names the offending file; keep the last good snapshot
	}
	for _, f := range res.Snapshot.Files {
		fmt.Printf("%s: %q\n", f.Path, f.Data)
	}
	fmt.Println(res.Snapshot.Revision)

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// app.yaml: "kind: Namespace\n"
	// sha256:53dd70cfec4dbb64dafec7776ecfa79c6e56c01b18476a416701252830da2b10
}
