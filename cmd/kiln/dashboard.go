package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/dashboard"
)

// newDashboard builds the read-only dashboard on its own clients, reading
// the API at rc like any other client. metrics is what /metrics serves
// besides the dashboard's own (the registry given to
// apiserver.Config.Metrics); token, when set, is required of every
// request (set it when dashboardListen is not loopback).
func newDashboard(rc *rest.Config, token string, metrics prometheus.Gatherer, log *slog.Logger) (*dashboard.Dashboard, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return dashboard.New(dashboard.Config{Client: cs, Dynamic: dyn, Token: token, Gatherer: metrics, Logger: log})
}
