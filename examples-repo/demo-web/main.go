// Command demo-web is the demo image of examples-repo (kiln.dev/demo-web):
// a tiny static HTTP server that answers "/" with its greeting, hostname
// (the pod name) and request count, and "/healthz" with 200. It logs one
// line per request to stdout and, on SIGTERM, logs "shutting down" and
// exits 0.
//
// The image has no shell, so the binary also carries the few tools that
// tests and probes need, as subcommands:
//
//	demo-web [serve] [-addr :8080]   serve HTTP (the default)
//	demo-web check [-url URL]        GET URL (default http://127.0.0.1:8080/healthz); exit 0 on 200, else 1 (exec probes)
//	demo-web get [-retry DUR] URL... GET each URL and print its status and body; exit 1 unless all answer 200
//	                                 (DNS and Services from inside a pod); -retry keeps trying each for up to DUR
//	demo-web exit CODE               print a line to stdout and one to stderr, exit with CODE
//	demo-web alloc MB                allocate and touch MB MiB, then sleep (memory limits)
//	demo-web sleep SECONDS           sleep, then exit 0 (init containers); SIGTERM ends it early
//	demo-web hang                    ignore SIGTERM and sleep until killed (grace period expiry)
//	demo-web id                      print uid, gid, working dir and hostname
//	demo-web env                     print the environment, one VAR=value a line
//	demo-web cat [FILE...]           print files (mounted ConfigMaps and Secrets), or stdin
//	demo-web write FILE TEXT         write TEXT to FILE (init containers filling an emptyDir)
//	demo-web whoami [-host HOST]     ask the cluster's API who the pod's service account is, as an
//	                                 in-cluster client does (KUBERNETES_SERVICE_HOST/PORT, the mounted
//	                                 token and CA); print the user name
//
// The HTTP server also allocates on request: GET /alloc?mb=N touches N MiB
// more and keeps it, so a running container can be driven past its memory
// limit.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "check":
		err = check(args)
	case "get":
		err = get(args)
	case "exit":
		err = exit(args)
	case "alloc":
		err = alloc(args)
	case "sleep":
		err = sleep(args)
	case "hang":
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("ignoring SIGTERM")
		for { // a bare select{} would be a deadlock the runtime kills
			time.Sleep(time.Hour)
		}
	case "id":
		wd, _ := os.Getwd()
		host, _ := os.Hostname()
		fmt.Printf("uid=%d gid=%d cwd=%s hostname=%s\n", os.Getuid(), os.Getgid(), wd, host)
	case "env":
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Println(e)
		}
	case "cat":
		err = cat(args)
	case "whoami":
		err = whoami(args)
	case "write":
		if len(args) != 2 {
			err = errors.New("usage: demo-web write FILE TEXT")
			break
		}
		err = os.WriteFile(args[0], []byte(args[1]), 0o644)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo-web:", err)
		os.Exit(1)
	}
}

// serve runs the HTTP server until SIGTERM or SIGINT.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _ := os.Hostname()
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	var (
		count atomic.Int64
		mu    sync.Mutex
		held  [][]byte // memory kept by /alloc
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := count.Add(1)
		fmt.Fprintf(w, "%s from %s (request %d)\n", greeting, host, n)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/alloc", func(w http.ResponseWriter, r *http.Request) {
		mb, err := strconv.Atoi(r.URL.Query().Get("mb"))
		if err != nil || mb <= 0 {
			http.Error(w, "mb must be a positive integer", http.StatusBadRequest)
			return
		}
		b := touch(mb)
		mu.Lock()
		held = append(held, b)
		mu.Unlock()
		fmt.Fprintf(w, "allocated %d MiB\n", mb)
	})
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		mux.ServeHTTP(w, r)
		fmt.Printf("%s %s from %s in %s\n", r.Method, r.URL.RequestURI(), r.RemoteAddr, time.Since(start).Round(time.Microsecond))
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Readiness baselines (ctr run) wait for this line, so it is printed
	// only once the socket accepts connections.
	fmt.Printf("listening on %s as %s\n", ln.Addr(), host)

	srv := &http.Server{Handler: logged, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Println("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// check is an exec probe: exit 0 when url answers 200.
func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "URL to GET")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", *url, resp.Status)
	}
	return nil
}

// get GETs each URL in turn, printing "GET URL: STATUS" and the body, so
// that a test reads from the pod's log what the pod reached (the demo
// answers with its hostname). With -retry it tries a URL again every
// 200ms until it answers 200 or the duration is up, printing each failure:
// the cluster DNS and the Service's rules may still be on their way when
// the pod starts.
func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	retry := fs.Duration("retry", 0, "keep trying each URL for this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: demo-web get [-retry DUR] URL...")
	}
	c := &http.Client{Timeout: 5 * time.Second}
	var failed []string
	for _, url := range fs.Args() {
		deadline := time.Now().Add(*retry)
		for {
			err := getOnce(c, url)
			if err == nil {
				break
			}
			fmt.Printf("GET %s: %v\n", url, err)
			if time.Now().After(deadline) {
				failed = append(failed, url)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d URLs failed: %v", len(failed), fs.NArg(), failed)
	}
	return nil
}

func getOnce(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	fmt.Printf("GET %s: %s\n%s", url, resp.Status, body)
	return nil
}

func exit(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: demo-web exit CODE")
	}
	code, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	fmt.Printf("exiting with %d\n", code)
	fmt.Fprintf(os.Stderr, "this line goes to stderr\n")
	os.Exit(code)
	return nil
}

func alloc(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: demo-web alloc MB")
	}
	mb, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	fmt.Printf("allocating %d MiB\n", mb)
	b := touch(mb)
	fmt.Printf("allocated %d MiB\n", len(b)>>20)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return nil
}

// touch allocates mb MiB and writes every page so the memory is charged
// to the cgroup.
func touch(mb int) []byte {
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}

func sleep(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: demo-web sleep SECONDS")
	}
	s, err := strconv.ParseFloat(args[0], 64)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-time.After(time.Duration(s * float64(time.Second))):
	case <-ctx.Done():
		fmt.Println("shutting down")
	}
	return nil
}

func cat(args []string) error {
	if len(args) == 0 {
		// Like cat(1): stdin to stdout, for kubectl exec -i.
		_, err := io.Copy(os.Stdout, os.Stdin)
		return err
	}
	for _, f := range args {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		os.Stdout.Write(b)
	}
	return nil
}

// saDir is where the kubelet mounts a pod's service account credentials.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount/"

// whoami posts a SelfSubjectReview to the API with the pod's token,
// trusting only the mounted CA, as client-go's in-cluster config does.
func whoami(args []string) error {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	host := fs.String("host", "", "API host:port (default $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr := *host
	if addr == "" {
		h, p := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if h == "" || p == "" {
			return errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
		}
		addr = net.JoinHostPort(h, p)
	}
	token, err := os.ReadFile(saDir + "token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(saDir + "ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in " + saDir + "ca.crt")
	}
	c := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/apis/authentication.k8s.io/v1/selfsubjectreviews", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(out))
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		return err
	}
	fmt.Println(review.Status.UserInfo.Username)
	return nil
}
