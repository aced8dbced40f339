package kubelet_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/kubelet/runtime"
	"kiln.dev/kiln/components/testenv"
)

// running waits for the pod's container to run and returns the
// ContainerConfig the runtime was given.
// mountAt is the container's mount at containerPath; the test fails
// without one.
func mountAt(t *testing.T, cfg runtime.ContainerConfig, containerPath string) runtime.Mount {
	t.Helper()
	for _, m := range cfg.Mounts {
		if m.ContainerPath == containerPath {
			return m
		}
	}
	t.Fatalf("no mount at %s: %+v", containerPath, cfg.Mounts)
	return runtime.Mount{}
}

func running(t *testing.T, c *cluster, n *node, pod *corev1.Pod, container string) runtime.ContainerConfig {
	t.Helper()
	got := c.waitPod(t, pod.Namespace, pod.Name, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	recs := n.rt.Configs(string(got.UID), container)
	if len(recs) == 0 {
		t.Fatalf("no container %s created", container)
	}
	return recs[len(recs)-1].Config
}

func envMap(cfg runtime.ContainerConfig) map[string]string {
	m := map[string]string{}
	for _, kv := range cfg.Env {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestKubelet_containerConfig_env(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-env")
	ctx := t.Context()
	cs := c.Clientset.CoreV1()
	if _, err := cs.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"mode": "fast", "level": "3", "bad-key": "x"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"password": []byte("s3cret"), "user": []byte("admin")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "redis-primary"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "redis", Port: 6379}, {Name: "metrics", Port: 9121}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.Services(ns).Get(ctx, "redis-primary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kube, err := cs.Services(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ctr := corev1.Container{
		Name:    "app",
		Image:   "example.com/app:v1",
		Command: []string{"/bin/app", "--mode=$(MODE)"},
		Args:    []string{"--user", "$(DB_USER)", "--literal=$$(MODE)", "--unknown=$(NOPE)"},
		EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}, Prefix: "CFG_"},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: new(true)}},
		},
		Env: []corev1.EnvVar{
			{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "mode"}}},
			{Name: "DB_USER", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "user"}}},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "APP_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU_REQUEST", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
				Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "GREETING", Value: "hello $(POD_NAME) on $(NODE) via $(REDIS_PRIMARY_SERVICE_HOST)"},
			{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "nope", Optional: new(true)}}},
		},
		WorkingDir: "/srv",
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m")},
		},
		SecurityContext: &corev1.SecurityContext{RunAsUser: new(int64(1000))},
	}
	p := newPod("env", n.name, nil, ctr)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: new(int64(1)), RunAsGroup: new(int64(2000))}
	pod := c.createPod(t, p)
	cfg := running(t, c, n, pod, "app")
	env := envMap(cfg)

	want := map[string]string{
		"CFG_mode":                           "fast",
		"CFG_level":                          "3",
		"password":                           "s3cret",
		"user":                               "admin",
		"MODE":                               "fast",
		"DB_USER":                            "admin",
		"POD_NAME":                           "env",
		"POD_UID":                            string(pod.UID),
		"POD_IP":                             "127.0.0.1",
		"NODE":                               n.name,
		"APP_LABEL":                          "env",
		"MEM_LIMIT_MI":                       "64",
		"CPU_REQUEST":                        "250",
		"GREETING":                           "hello env on " + n.name + " via " + svc.Spec.ClusterIP,
		"REDIS_PRIMARY_SERVICE_HOST":         svc.Spec.ClusterIP,
		"REDIS_PRIMARY_SERVICE_PORT":         "6379",
		"REDIS_PRIMARY_SERVICE_PORT_REDIS":   "6379",
		"REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
		"REDIS_PRIMARY_PORT":                 "tcp://" + svc.Spec.ClusterIP + ":6379",
		"REDIS_PRIMARY_PORT_6379_TCP":        "tcp://" + svc.Spec.ClusterIP + ":6379",
		"REDIS_PRIMARY_PORT_6379_TCP_PROTO":  "tcp",
		"REDIS_PRIMARY_PORT_6379_TCP_PORT":   "6379",
		"REDIS_PRIMARY_PORT_6379_TCP_ADDR":   svc.Spec.ClusterIP,
		"REDIS_PRIMARY_PORT_9121_TCP_PORT":   "9121",
		"KUBERNETES_SERVICE_HOST":            kube.Spec.ClusterIP,
		"KUBERNETES_SERVICE_PORT":            "443",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["OPTIONAL"]; ok {
		t.Error("env has OPTIONAL, from a missing optional key")
	}
	// Kubernetes 1.32 accepts any printable name but "=" (relaxed
	// environment variable validation, on by default).
	if env["CFG_bad-key"] != "x" {
		t.Errorf("env CFG_bad-key = %q", env["CFG_bad-key"])
	}
	if got := []string{cfg.Env[0].Key, cfg.Env[1].Key}; !slices.Equal(got, []string{"CFG_bad-key", "CFG_level"}) {
		t.Errorf("env starts with %v, want envFrom first, keys sorted", got)
	}
	if !slices.Equal(cfg.Command, []string{"/bin/app", "--mode=fast"}) {
		t.Errorf("command %q", cfg.Command)
	}
	if !slices.Equal(cfg.Args, []string{"--user", "admin", "--literal=$(MODE)", "--unknown=$(NOPE)"}) {
		t.Errorf("args %q", cfg.Args)
	}
	if cfg.WorkingDir != "/srv" || cfg.RunAsUser == nil || *cfg.RunAsUser != 1000 || cfg.RunAsGroup == nil || *cfg.RunAsGroup != 2000 {
		t.Errorf("workingDir %q runAsUser %v runAsGroup %v", cfg.WorkingDir, cfg.RunAsUser, cfg.RunAsGroup)
	}
	wantRes := runtime.Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	if cfg.Resources != wantRes {
		t.Errorf("resources %+v, want %+v", cfg.Resources, wantRes)
	}
	if cfg.Labels[runtime.LabelPodUID] != string(pod.UID) || cfg.Labels[runtime.LabelContainerName] != "app" || cfg.Annotations[runtime.AnnotationContainerHash] == "" {
		t.Errorf("labels %v annotations %v", cfg.Labels, cfg.Annotations)
	}

	// enableServiceLinks=false: only the API server's Service.
	p = newPod("nolinks", n.name, nil)
	p.Spec.EnableServiceLinks = new(false)
	pod = c.createPod(t, p)
	env = envMap(running(t, c, n, pod, "app"))
	if _, ok := env["REDIS_PRIMARY_SERVICE_HOST"]; ok {
		t.Error("service links with enableServiceLinks=false")
	}
	if env["KUBERNETES_SERVICE_HOST"] != kube.Spec.ClusterIP {
		t.Errorf("KUBERNETES_SERVICE_HOST = %q without service links, want %q", env["KUBERNETES_SERVICE_HOST"], kube.Spec.ClusterIP)
	}

	// A missing ConfigMap keeps the container waiting with the reason.
	p = newPod("missing", n.name, nil, corev1.Container{Name: "app", Image: "busybox", Env: []corev1.EnvVar{{Name: "X",
		ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "k"}}}}})
	pod = c.createPod(t, p)
	got := c.waitPod(t, ns, pod.Name, "CreateContainerConfigError", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "app")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerConfigError"
	})
	if msg := containerStatus(got, "app").State.Waiting.Message; msg != `configmap "nope" not found` {
		t.Errorf("message %q", msg)
	}
}

func TestKubelet_volumes_filesAndMounts(t *testing.T) {
	c := startCluster(t)
	n := simNode(t, c, "node-vol")
	ctx := t.Context()
	cs := c.Clientset.CoreV1()
	cm, err := cs.ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Data: map[string]string{"index.html": "<h1>hi</h1>", "app.conf": "port=80"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls"},
		Data: map[string][]byte{"tls.key": []byte("KEY"), "tls.crt": []byte("CRT")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	p := newPod("vols", n.name, map[string]string{"team": "kiln"}, corev1.Container{
		Name: "app", Image: "example.com/app:v1",
		VolumeMounts: []corev1.VolumeMount{
			{Name: "html", MountPath: "/usr/share/html"},
			{Name: "html", MountPath: "/etc/app.conf", SubPath: "app.conf"},
			{Name: "certs", MountPath: "/certs"},
			{Name: "info", MountPath: "/etc/podinfo"},
			{Name: "all", MountPath: "/projected"},
			{Name: "scratch", MountPath: "/scratch"},
			{Name: "host", MountPath: "/host"},
		},
	})
	p.Spec.Volumes = []corev1.Volume{
		{Name: "html", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}},
		{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls", DefaultMode: new(int32(0o400)),
			Items: []corev1.KeyToPath{{Key: "tls.key", Path: "private/key.pem"}, {Key: "tls.crt", Path: "cert.pem", Mode: new(int32(0o444))}}}}},
		{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		}}}},
		{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}, Items: []corev1.KeyToPath{{Key: "app.conf", Path: "conf/app.conf"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "ns", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}},
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(hostDir, "data"), Type: new(corev1.HostPathDirectoryOrCreate)}}},
	}
	pod := c.createPod(t, p)
	cfg := running(t, c, n, pod, "app")
	mounts := map[string]runtime.Mount{}
	for _, m := range cfg.Mounts {
		mounts[m.ContainerPath] = m
	}
	file := func(containerDir, rel string) (string, os.FileMode) {
		t.Helper()
		m, ok := mounts[containerDir]
		if !ok {
			t.Fatalf("no mount at %s; mounts %+v", containerDir, cfg.Mounts)
		}
		path := m.HostPath
		if rel != "" {
			path = filepath.Join(path, rel)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s/%s: %v", containerDir, rel, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), fi.Mode().Perm()
	}
	checks := []struct {
		dir, rel, content string
		mode              os.FileMode
	}{
		{"/usr/share/html", "index.html", "<h1>hi</h1>", 0o644},
		{"/etc/app.conf", "", "port=80", 0o644},
		{"/certs", "private/key.pem", "KEY", 0o400},
		{"/certs", "cert.pem", "CRT", 0o444},
		{"/etc/podinfo", "name", "vols", 0o644},
		{"/etc/podinfo", "labels", `app="vols"`, 0o644},
		{"/etc/podinfo", "annotations", `team="kiln"`, 0o644},
		{"/projected", "conf/app.conf", "port=80", 0o644},
		{"/projected", "tls.crt", "CRT", 0o644},
		{"/projected", "ns", ns, 0o644},
	}
	for _, ch := range checks {
		got, mode := file(ch.dir, ch.rel)
		if got != ch.content || mode != ch.mode {
			t.Errorf("%s/%s = %q mode %o, want %q mode %o", ch.dir, ch.rel, got, mode, ch.content, ch.mode)
		}
	}
	for _, ro := range []string{"/usr/share/html", "/certs", "/etc/podinfo", "/projected"} {
		if !mounts[ro].ReadOnly {
			t.Errorf("%s is mounted read-write", ro)
		}
	}
	if fi, err := os.Stat(mounts["/scratch"].HostPath); err != nil || fi.Mode().Perm() != 0o777 || mounts["/scratch"].ReadOnly {
		t.Errorf("emptyDir %+v: %v %v", mounts["/scratch"], fi, err)
	}
	if m := mounts["/host"]; m.HostPath != filepath.Join(hostDir, "data") {
		t.Errorf("hostPath mount %+v", m)
	} else if fi, err := os.Stat(m.HostPath); err != nil || !fi.IsDir() {
		t.Errorf("hostPath DirectoryOrCreate not created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "pods", string(pod.UID), "volumes", "html")); err != nil {
		t.Errorf("volumes are not under RootDir/pods/<uid>/volumes: %v", err)
	}

	hosts, _ := file("/etc/hosts", "")
	if !strings.Contains(hosts, "127.0.0.1\tvols\n") || !strings.Contains(hosts, "localhost") {
		t.Errorf("etc-hosts:\n%s", hosts)
	}
	resolv, _ := file("/etc/resolv.conf", "")
	for _, want := range []string{"nameserver 10.43.0.10\n", "search default.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5\n"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if m, ok := mounts["/dev/termination-log"]; !ok || m.ReadOnly {
		t.Errorf("termination log mount %+v", m)
	}

	// An update of the ConfigMap reaches the volume at the next refresh
	// (ResyncPeriod, 5s here), atomically.
	cm.Data["index.html"] = "<h1>v2</h1>"
	if _, err := cs.ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old timestamped directory goes right after ..data moves, so
	// the directory is checked once it has settled.
	var names []string
	eventually(t, "configMap volume updated and its old directory removed", func() bool {
		b, err := os.ReadFile(filepath.Join(mounts["/usr/share/html"].HostPath, "index.html"))
		if err != nil || string(b) != "<h1>v2</h1>" {
			return false
		}
		entries, err := os.ReadDir(mounts["/usr/share/html"].HostPath)
		if err != nil {
			return false
		}
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return len(names) == 4
	})
	if len(names) != 4 || !slices.Contains(names, "..data") { // ..<timestamp>, ..data, app.conf, index.html
		t.Errorf("volume directory holds %v, want one timestamped dir, ..data and two links", names)
	}
}

// An emptyDir of medium Memory is a tmpfs of its sizeLimit, as in
// Kubernetes, and is unmounted when the pod goes.
func TestKubelet_volumes_emptyDirMemoryIsTmpfs(t *testing.T) {
	testenv.Require(t, "root (tmpfs mounts)", os.Geteuid() == 0)
	c := startCluster(t)
	n := simNode(t, c, "node-tmpfs")
	p := newPod("shm", n.name, nil, corev1.Container{
		Name: "app", Image: "example.com/app:v1",
		VolumeMounts: []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}},
	})
	limit := resource.MustParse("8Mi")
	p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &limit}}}}
	pod := c.createPod(t, p)
	cfg := running(t, c, n, pod, "app")
	dir := mountAt(t, cfg, "/cache").HostPath
	// Should the test stop early, the temp dir must still come off.
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("%s is filesystem type %#x, want tmpfs", dir, st.Type)
	}
	if size := int64(st.Blocks) * st.Bsize; size != 8<<20 {
		t.Errorf("tmpfs size %d bytes, want the sizeLimit 8Mi", size)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := c.Clientset.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	podDir := filepath.Join(n.dir, "pods", string(pod.UID))
	eventually(t, "pod directory removed", func() bool {
		_, err := os.Stat(podDir)
		return os.IsNotExist(err)
	})
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), podDir) {
		t.Errorf("a mount under %s is left after the pod was removed", podDir)
	}
}
