// Package k8s holds the Kubernetes manifests (Kustomize base and the dev and prod
// overlays) and the test that renders every overlay and checks the deployment rules.
package k8s
