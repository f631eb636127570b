// Package deploy holds the manifests that run `conntop serve` on every node
// of a Kubernetes cluster: a DaemonSet (host network, only CAP_NET_ADMIN and
// CAP_NET_RAW, read-only root filesystem, non-root through file
// capabilities), a headless Service, a Prometheus Operator ServiceMonitor
// and PrometheusRule, a plain Prometheus scrape configuration, and a Grafana
// dashboard (grafana-dashboard.json; data source and node are variables,
// and its tests check every metric it queries against a live /metrics). The
// static image is built by the Containerfile at the repository root.
//
// The manifests are embedded so that tests (and tools) can read them.
package deploy

import "embed"

// Manifests are the YAML files of this directory.
//
//go:embed *.yaml
var Manifests embed.FS
