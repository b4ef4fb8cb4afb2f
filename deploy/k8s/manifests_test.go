package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

var services = []string{"gateway", "auth", "tasks", "ai", "billing"}

// render builds an overlay the way `kubectl kustomize` would.
func render(t *testing.T, overlay string) resmap.ResMap {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), "overlays/"+overlay)
	if err != nil {
		t.Fatalf("render %s: %v", overlay, err)
	}
	return m
}

// decodeStrict decodes a rendered object into its k8s.io/api type, refusing unknown
// fields, so a typo in a manifest fails here rather than at apply time.
func decodeStrict(t *testing.T, raw []byte, into any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("strict decode into %T: %v\n%s", into, err, raw)
	}
}

type objects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	hpas        map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs        map[string]*policyv1.PodDisruptionBudget
	jobs        map[string]*batchv1.Job
	configMaps  map[string]*corev1.ConfigMap
	ingresses   []*networkingv1.Ingress
	policies    []*networkingv1.NetworkPolicy
	custom      map[string]map[string]any // kind → raw object (CRDs: CloudNativePG Cluster)
}

func load(t *testing.T, overlay string) objects {
	t.Helper()
	o := objects{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		jobs: map[string]*batchv1.Job{}, configMaps: map[string]*corev1.ConfigMap{}, custom: map[string]map[string]any{},
	}
	for _, r := range render(t, overlay).Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		name := r.GetName()
		switch r.GetKind() {
		case "Deployment":
			var v appsv1.Deployment
			decodeStrict(t, raw, &v)
			o.deployments[name] = &v
		case "Service":
			var v corev1.Service
			decodeStrict(t, raw, &v)
			o.services[name] = &v
		case "HorizontalPodAutoscaler":
			var v autoscalingv2.HorizontalPodAutoscaler
			decodeStrict(t, raw, &v)
			o.hpas[name] = &v
		case "PodDisruptionBudget":
			var v policyv1.PodDisruptionBudget
			decodeStrict(t, raw, &v)
			o.pdbs[name] = &v
		case "Job":
			var v batchv1.Job
			decodeStrict(t, raw, &v)
			o.jobs[name] = &v
		case "ConfigMap":
			var v corev1.ConfigMap
			decodeStrict(t, raw, &v)
			o.configMaps[name] = &v
		case "Ingress":
			var v networkingv1.Ingress
			decodeStrict(t, raw, &v)
			o.ingresses = append(o.ingresses, &v)
		case "NetworkPolicy":
			var v networkingv1.NetworkPolicy
			decodeStrict(t, raw, &v)
			o.policies = append(o.policies, &v)
		default:
			var v map[string]any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			o.custom[r.GetKind()] = v
		}
	}
	return o
}

func TestOverlaysFollowTheDeploymentRules(t *testing.T) {
	t.Parallel()
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			t.Parallel()
			o := load(t, overlay)
			minReplicas := int32(1)
			if overlay == "prod" {
				minReplicas = 2
			}
			for _, s := range services {
				d, ok := o.deployments[s]
				if !ok {
					t.Fatalf("no Deployment %s", s)
				}
				checkDeployment(t, d, minReplicas)
				if _, ok := o.services[s]; !ok {
					t.Errorf("no Service %s", s)
				}
				if h, ok := o.hpas[s]; !ok || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < minReplicas {
					t.Errorf("HPA %s missing or minReplicas below %d", s, minReplicas)
				}
				if _, ok := o.pdbs[s]; !ok {
					t.Errorf("no PodDisruptionBudget %s", s)
				}
				if s != "gateway" {
					j, ok := o.jobs[s+"-migrate"]
					if !ok {
						t.Errorf("no migration Job for %s", s)
					} else if args := j.Spec.Template.Spec.Containers[0].Args; len(args) != 1 || args[0] != "migrate" {
						t.Errorf("migration Job %s runs %v, want the migrate subcommand", s, args)
					}
				}
			}
			checkNoDevSwitches(t, o)
			checkIngress(t, o.ingresses)
			checkDefaultDeny(t, o.policies)
			cluster, ok := o.custom["Cluster"]
			if !ok {
				t.Fatal("no CloudNativePG Cluster")
			}
			if inst := cluster["spec"].(map[string]any)["instances"].(float64); overlay == "prod" && inst < 3 {
				t.Errorf("prod database has %v instances, want 3", inst)
			}
		})
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, minReplicas int32) {
	t.Helper()
	name := d.Name
	if d.Spec.Replicas == nil || *d.Spec.Replicas < minReplicas {
		t.Errorf("%s: replicas below %d", name, minReplicas)
	}
	ps := d.Spec.Template.Spec
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod must run as non-root", name)
	}
	for _, c := range ps.Containers {
		where := fmt.Sprintf("%s/%s", name, c.Name)
		tag := c.Image[strings.LastIndex(c.Image, ":")+1:]
		if !strings.Contains(c.Image, ":") || tag == "latest" || tag == "" {
			t.Errorf("%s: image %q needs a pinned tag", where, c.Image)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/health/ready" {
			t.Errorf("%s: readiness probe must be /health/ready", where)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/health/live" {
			t.Errorf("%s: liveness probe must be /health/live", where)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: requests and memory limit required", where)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem must be read-only", where)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: privilege escalation must be off", where)
		}
		memLimit := false
		for _, e := range c.Env {
			checkSwitch(t, where, e.Name, e.Value)
			if f := e.ValueFrom; e.Name == "GOMEMLIMIT" && f != nil && f.ResourceFieldRef != nil &&
				f.ResourceFieldRef.Resource == "limits.memory" && f.ResourceFieldRef.ContainerName == c.Name {
				memLimit = true
			}
		}
		if !memLimit {
			t.Errorf("%s: GOMEMLIMIT must come from the container's limits.memory", where)
		}
	}
}

func checkNoDevSwitches(t *testing.T, o objects) {
	t.Helper()
	for name, cm := range o.configMaps {
		for k, v := range cm.Data {
			checkSwitch(t, "ConfigMap "+name, k, v)
		}
	}
}

// checkSwitch refuses the local-only switches anywhere in a cluster overlay.
func checkSwitch(t *testing.T, where, key, value string) {
	t.Helper()
	if (key == "AUTH_DEV_LOGIN" || key == "BILLING_SIMULATE_PAYMENTS") && value != "false" {
		t.Errorf("%s: %s=%q; dev login and simulated payments must be off", where, key, value)
	}
}

func checkDefaultDeny(t *testing.T, policies []*networkingv1.NetworkPolicy) {
	t.Helper()
	for _, p := range policies {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 && len(p.Spec.PolicyTypes) == 2 {
			return
		}
	}
	t.Error("no default-deny NetworkPolicy")
}

// checkIngress: one Ingress, every path to the gateway, and none that exposes the
// operational endpoints (/health/*, /metrics) to the internet.
func checkIngress(t *testing.T, ings []*networkingv1.Ingress) {
	t.Helper()
	if len(ings) != 1 {
		t.Fatalf("%d Ingresses, want exactly one", len(ings))
	}
	for _, rule := range ings[0].Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || p.Backend.Service.Name != "gateway" {
				t.Errorf("Ingress path %s goes elsewhere than the gateway", p.Path)
			}
			for _, private := range []string{"/health/live", "/health/ready", "/metrics"} {
				if strings.HasPrefix(private, p.Path) {
					t.Errorf("Ingress path %s exposes %s", p.Path, private)
				}
			}
		}
	}
}
