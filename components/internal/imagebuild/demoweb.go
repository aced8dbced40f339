package imagebuild

// DemoWebRef is the demo image's reference; examples-repo/app runs it.
const DemoWebRef = "kiln.dev/demo-web:0.1.0"

// DemoWeb is the spec of the demo image, built from examples-repo/demo-web
// in the module at moduleRoot. The binary is /demo-web; see its package
// comment for the subcommands tests use (check, exit, alloc, sleep, env,
// cat, write).
func DemoWeb(moduleRoot string) Spec {
	return Spec{
		Ref:          DemoWebRef,
		GoMain:       "./examples-repo/demo-web",
		GoDir:        moduleRoot,
		BinaryPath:   "/demo-web",
		ExposedPorts: []string{"8080/tcp"},
		Labels:       map[string]string{"org.opencontainers.image.source": "kiln.dev/kiln/examples-repo/demo-web"},
	}
}
