// Package imagebuild builds small single-layer container images without a
// registry or a daemon: a static Go main package (go build with
// CGO_ENABLED=0) and/or given files, with an entrypoint, env and exposed
// ports, written as a docker-format ("docker save") or OCI-layout tarball
// with go-containerregistry. kiln imports such archives from
// DATA_DIR/images, so tests and `make images` need no registry.
//
// It is used by the containerd runtime's tests, the kubelet's tests and
// examples-repo/demo-web/build (which `make images` runs).
//
//	img, err := imagebuild.Build(ctx, imagebuild.DemoWeb(moduleRoot))
//	if err != nil { ... }
//	err = imagebuild.WriteFile(filepath.Join(dataDir, "images", "demo-web.tar"), imagebuild.DemoWebRef, img, imagebuild.OCI)
package imagebuild
