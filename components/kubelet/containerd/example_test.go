package containerd_test

import (
	"context"
	"fmt"
	"time"

	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/components/kubelet/runtime"
)

// The kubelet runs the runtime beside itself and drives it through the
// runtime.Runtime interface.
func Example() {
	run := func(ctx context.Context) error {
		rt, err := containerd.New(containerd.Config{RootDir: "/var/lib/kiln", Namespace: "node-1"})
		if err != nil {
			return err
		}
		errc := make(chan error, 1)
		go func() { errc <- rt.Run(ctx) }()
		select {
		case <-rt.Ready():
		case err := <-errc:
			return err
		}
		if err := rt.SetPodCIDR(ctx, "10.42.0.0/24"); err != nil {
			return err
		}
		sb, err := rt.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "1234", Namespace: "demo", Name: "web-0", Hostname: "web-0"})
		if err != nil {
			return err
		}
		id, err := rt.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{
			Name:    "web",
			Image:   "kiln.dev/demo-web:0.1.0",
			LogPath: "/var/lib/kiln/pods/1234/web/0.log",
		})
		if err != nil {
			return err
		}
		if err := rt.StartContainer(ctx, id); err != nil {
			return err
		}
		fmt.Println("serving on", sb.IP+":8080")
		if err := rt.StopContainer(ctx, id, 30*time.Second); err != nil {
			return err
		}
		return <-errc
	}
	_ = run
}
