package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// contentSecurityPolicy allows the page's own script, styles and
// connections and nothing else: no inline script or style, no framing,
// no form posting elsewhere. Even markup that escaped html/template could
// run nothing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// tokenCookie holds a digest of the token for browsers, set by ?token=.
const tokenCookie = "kiln_dashboard"

// secure wraps every route: the safety headers, GET and HEAD only, and
// the token when one is configured. Static assets carry no cluster data
// and are served without the token, so the login page is styled.
func (d *Dashboard) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
			return
		}
		if d.cfg.Token != "" && !strings.HasPrefix(r.URL.Path, "/static/") && !d.authorized(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized checks the bearer token or the cookie. A correct ?token=
// sets the cookie and redirects to the same URL without it, so the token
// does not stay in the address bar or history. On failure it has written
// the answer.
func (d *Dashboard) authorized(w http.ResponseWriter, r *http.Request) bool {
	want := sha256.Sum256([]byte(d.cfg.Token))
	if auth := r.Header.Get("Authorization"); auth != "" {
		got, ok := strings.CutPrefix(auth, "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if ok && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			return true
		}
		d.unauthorized(w)
		return false
	}
	if c, err := r.Cookie(tokenCookie); err == nil {
		got, err := hex.DecodeString(c.Value)
		if err == nil && subtle.ConstantTimeCompare(got, d.cookieValue()) == 1 {
			return true
		}
	}
	if q := r.URL.Query(); q.Has("token") {
		sum := sha256.Sum256([]byte(q.Get("token")))
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: hex.EncodeToString(d.cookieValue()), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			q.Del("token")
			// Only the path and query of this request: "//host" would
			// be another site.
			u := url.URL{Path: "/" + strings.TrimLeft(r.URL.Path, "/"), RawQuery: q.Encode()}
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return false
		}
	}
	d.unauthorized(w)
	return false
}

// cookieValue is what the cookie holds: a digest of the token, so the
// cookie is not the token itself.
func (d *Dashboard) cookieValue() []byte {
	sum := sha256.Sum256([]byte("kiln-dashboard-cookie\x00" + d.cfg.Token))
	return sum[:]
}

func (d *Dashboard) unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="kiln dashboard"`)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "this dashboard needs its token: send \"Authorization: Bearer <token>\", or open any page once with ?token=<token>", http.StatusUnauthorized)
}
