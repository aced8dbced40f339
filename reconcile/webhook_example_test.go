package reconcile_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"kiln.dev/kiln/reconcile"
)

func ExampleWebhookHandler() {
	secret := []byte("from webhookSecretFile")
	mux := http.NewServeMux()
	mux.Handle(reconcile.WebhookPath, reconcile.WebhookHandler(reconcile.WebhookConfig{
		Sources: map[string]reconcile.WebhookSource{
			// Trigger is the git source's: src.Trigger.
			"apps": {Trigger: func() { fmt.Println("fetch now") }, Secret: secret, Branch: "main"},
		},
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// What GitHub sends on a push to main.
	body := `{"ref":"refs/heads/main"}`
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git/apps", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.StatusCode, " ", string(reply))
	// Output:
	// fetch now
	// 202 {"source":"apps","triggered":true}
}
