// Command build-demo-web writes the demo image kiln.dev/demo-web:0.1.0 as an image
// archive that kiln imports from DATA_DIR/images (`make images`):
//
//	go run ./components/internal/imagebuild/build-demo-web -o .data/images/demo-web.tar [-format oci|docker]
//
// It runs from anywhere inside the kiln module. It lives here, not beside
// the demo's source in examples-repo, because Go's internal rule only lets
// code under components/ import this package.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"kiln.dev/kiln/components/internal/imagebuild"
)

func main() {
	out := flag.String("o", "demo-web.tar", "archive to write")
	format := flag.String("format", "oci", "archive format: oci or docker")
	flag.Parse()
	if err := run(context.Background(), *out, *format); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out, format string) error {
	var f imagebuild.Format
	switch format {
	case "oci":
		f = imagebuild.OCI
	case "docker":
		f = imagebuild.Docker
	default:
		return fmt.Errorf("-format: %q is not oci or docker", format)
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return fmt.Errorf("run inside the kiln module (go env GOMOD is %q)", mod)
	}
	root := filepath.Dir(mod)
	img, err := imagebuild.Build(ctx, imagebuild.DemoWeb(root))
	if err != nil {
		return err
	}
	if err := imagebuild.WriteFile(out, imagebuild.DemoWebRef, img, f); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %s)\n", out, imagebuild.DemoWebRef, d)
	return nil
}
