package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
)

// maxRequestBytes bounds a join request: two CSRs and two short strings.
const maxRequestBytes = 64 << 10

// HandlerConfig configures the join endpoint. CA is required.
type HandlerConfig struct {
	// CA signs the nodes' certificates; its certificate is sent back.
	CA *pki.CA
	// ClusterCIDR, ServiceCIDR and ClusterDNS are passed on to agents.
	ClusterCIDR, ServiceCIDR, ClusterDNS string
	// Servers returns every API server URL known; nil means none besides
	// the one the agent used.
	Servers func() []string
	// Validity of the issued certificates; zero means
	// pki.DefaultNodeCertValidity.
	Validity time.Duration
	// ClaimName binds a node name to the node password of the machine
	// joining under it (store.Store.ClaimNodePassword); an error wrapping
	// store.ErrNodeNameTaken is a 403. Nil means names are not checked.
	ClaimName func(ctx context.Context, nodeName, password string) error
	// Logger gets a line per join; nil means slog.Default().
	Logger *slog.Logger
}

type handler struct {
	cfg HandlerConfig
	log *slog.Logger
}

// Handler returns the join endpoint, to be mounted at PathPrefix behind the
// API server's authentication. It answers POST JoinPath from users in
// system:bootstrappers or system:masters, 403 to anyone else, 400 to a bad
// request and 404 elsewhere under PathPrefix.
func Handler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.CA == nil {
		return nil, errors.New("join: CA is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &handler{cfg: cfg, log: cfg.Logger.With("component", "join")}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != JoinPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: POST a join request", http.StatusMethodNotAllowed)
		return
	}
	u, ok := apiserver.UserFrom(r.Context())
	if !ok || !slices.ContainsFunc(u.Groups, func(g string) bool { return g == GroupBootstrappers || g == apiserver.GroupMasters }) {
		h.log.Warn("join refused", "user", u.Name, "reason", "not a bootstrapper")
		http.Error(w, fmt.Sprintf("forbidden: user %q may not join nodes", u.Name), http.StatusForbidden)
		return
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad join request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if h.cfg.ClaimName != nil {
		if req.NodePassword == "" {
			http.Error(w, "bad join request: nodePassword is required", http.StatusBadRequest)
			return
		}
		// Checked only once the request is well-formed (sign checks the
		// name), but before anything is signed.
		if errs := validation.IsDNS1123Subdomain(req.NodeName); len(errs) == 0 {
			if err := h.cfg.ClaimName(r.Context(), req.NodeName, req.NodePassword); err != nil {
				h.log.Warn("join refused", "user", u.Name, "node", req.NodeName, "err", err)
				if errors.Is(err, store.ErrNodeNameTaken) {
					http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
					return
				}
				http.Error(w, "join: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
	}
	resp, err := h.sign(req)
	if err != nil {
		h.log.Warn("join refused", "user", u.Name, "node", req.NodeName, "err", err)
		http.Error(w, "bad join request: "+err.Error(), http.StatusBadRequest)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, "encode answer", http.StatusInternalServerError)
		return
	}
	h.log.Info("node joined", "node", req.NodeName, "nodeIP", req.NodeIP, "user", u.Name)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// sign validates req and issues its certificates.
func (h *handler) sign(req Request) (*Response, error) {
	if errs := validation.IsDNS1123Subdomain(req.NodeName); len(errs) > 0 {
		return nil, fmt.Errorf("nodeName %q: %s", req.NodeName, strings.Join(errs, "; "))
	}
	ip, err := netip.ParseAddr(req.NodeIP)
	if err != nil || ip.IsUnspecified() || ip.Zone() != "" {
		return nil, fmt.Errorf("nodeIP %q: want an IP address", req.NodeIP)
	}
	clientCert, err := h.cfg.CA.SignClientCSR([]byte(req.ClientCSR), NodeUserPrefix+req.NodeName, []string{GroupNodes}, h.cfg.Validity)
	if err != nil {
		return nil, fmt.Errorf("clientCSR: %w", err)
	}
	servingCert, err := h.cfg.CA.SignServingCSR([]byte(req.ServingCSR), NodeUserPrefix+req.NodeName,
		[]string{ip.String(), req.NodeName}, h.cfg.Validity)
	if err != nil {
		return nil, fmt.Errorf("servingCSR: %w", err)
	}
	var servers []string
	if h.cfg.Servers != nil {
		servers = h.cfg.Servers()
	}
	return &Response{
		CACert:      string(h.cfg.CA.CertPEM),
		ClientCert:  string(clientCert),
		ServingCert: string(servingCert),
		Info: Info{
			NodeName:    req.NodeName,
			NodeIP:      ip.String(),
			ClusterCIDR: h.cfg.ClusterCIDR,
			ServiceCIDR: h.cfg.ServiceCIDR,
			ClusterDNS:  h.cfg.ClusterDNS,
			Servers:     servers,
		},
	}, nil
}
