package endpointslice

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sliceGroup is the desired content of the slices of one address type and
// port set.
type sliceGroup struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	// endpoints are sorted by endpointKey.
	endpoints []discoveryv1.Endpoint
	// placeholder keeps one slice even without endpoints.
	placeholder bool
}

// groupKey identifies a sliceGroup; it is also computed for existing
// slices to match them to their group.
func groupKey(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	return string(at) + "|" + portsKey(ports)
}

// desiredGroups computes the Service's endpoints from the pods its
// selector matches, grouped by address type and resolved port set. A
// Service without endpoints gets one placeholder group (IPv4, no ports),
// so that it keeps one empty slice, as kube does.
func desiredGroups(svc *corev1.Service, pods []*corev1.Pod) map[string]*sliceGroup {
	groups := map[string]*sliceGroup{}
	types := addressTypes(svc)
	for _, pod := range pods {
		if !includePod(pod, true) {
			continue
		}
		ports := slicePorts(svc, pod)
		for _, at := range types {
			addr := podAddress(pod, at)
			if addr == "" {
				continue
			}
			key := groupKey(at, ports)
			g := groups[key]
			if g == nil {
				g = &sliceGroup{addressType: at, ports: ports}
				groups[key] = g
			}
			g.endpoints = append(g.endpoints, newEndpoint(svc, pod, addr))
		}
	}
	for _, g := range groups {
		sortEndpoints(g.endpoints)
	}
	if len(groups) == 0 {
		groups[groupKey(discoveryv1.AddressTypeIPv4, nil)] = &sliceGroup{addressType: discoveryv1.AddressTypeIPv4, placeholder: true}
	}
	return groups
}

func sortEndpoints(eps []discoveryv1.Endpoint) {
	slices.SortStableFunc(eps, func(a, b discoveryv1.Endpoint) int {
		return strings.Compare(endpointKey(&a), endpointKey(&b))
	})
}

// sliceLabels are the labels of the Service's slices: the Service's own
// (except the two this controller sets), the service name, the manager,
// and the headless marker (kube's getEndpointSliceLabels).
func sliceLabels(svc *corev1.Service) map[string]string {
	l := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		if k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy {
			continue
		}
		l[k] = v
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ControllerName
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	} else {
		delete(l, corev1.IsHeadlessService)
	}
	return l
}

// serviceRef is the controller owner reference of the Service's slices.
func serviceRef(svc *corev1.Service) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))}
}

// ownedByName says whether the slice's controller is a Service of that
// name, of any UID: a slice of this Service or of an earlier Service of
// the same name.
func ownedByName(s *discoveryv1.EndpointSlice, name string) bool {
	ref := metav1.GetControllerOfNoCopy(s)
	return ref != nil && ref.APIVersion == "v1" && ref.Kind == "Service" && ref.Name == name &&
		s.Labels[discoveryv1.LabelManagedBy] == ControllerName && s.Labels[discoveryv1.LabelServiceName] == name
}

// slicePlan is the writes that bring a Service's slices to the desired
// state, in the order they are made: creates, then updates, then deletes,
// so that an endpoint that moves between slices is never missing.
type slicePlan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

func (p slicePlan) empty() bool { return len(p.create)+len(p.update)+len(p.delete) == 0 }

// sliceWork is one existing slice while planning.
type sliceWork struct {
	orig      *discoveryv1.EndpointSlice
	endpoints []discoveryv1.Endpoint
	keep      bool // a placeholder: kept though empty
}

// planSlices compares the desired groups with the Service's existing
// slices (all owned by a Service of its name) and plans the fewest
// writes, to avoid churn: an endpoint stays in the slice that has it,
// new endpoints fill slices that change anyway before slices that would
// not, and only then new slices; a slice left empty is reused for a new
// one of the same address type rather than deleted and recreated.
// Slices of an earlier Service of the same name are replaced.
func planSlices(svc *corev1.Service, groups map[string]*sliceGroup, existing []*discoveryv1.EndpointSlice, maxPerSlice int) slicePlan {
	labels, refs := sliceLabels(svc), serviceRef(svc)
	var plan slicePlan
	byGroup := map[string][]*discoveryv1.EndpointSlice{}
	var stale []*discoveryv1.EndpointSlice
	for _, s := range existing {
		ref := metav1.GetControllerOfNoCopy(s)
		if ref == nil || ref.UID != svc.UID {
			stale = append(stale, s)
			continue
		}
		key := groupKey(s.AddressType, s.Ports)
		byGroup[key] = append(byGroup[key], s)
	}
	keys := slices.Sorted(maps.Keys(groups))
	for key := range byGroup {
		if groups[key] == nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)

	// want builds the slice for a group with the given endpoints, from a
	// copy of base (nil: a new slice).
	want := func(base *discoveryv1.EndpointSlice, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		var s *discoveryv1.EndpointSlice
		if base != nil {
			s = base.DeepCopy()
		} else {
			s = &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{GenerateName: svc.Name + "-", Namespace: svc.Namespace}}
		}
		s.Labels = maps.Clone(labels)
		s.OwnerReferences = slices.Clone(refs)
		s.AddressType = at
		s.Ports = slices.Clone(ports)
		if eps == nil {
			eps = []discoveryv1.Endpoint{}
		}
		s.Endpoints = eps
		return s
	}

	var emptied []*discoveryv1.EndpointSlice
	for _, key := range keys {
		g := groups[key]
		existingSlices := byGroup[key]
		slices.SortFunc(existingSlices, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
		desired := map[string]*discoveryv1.Endpoint{}
		if g != nil {
			for i := range g.endpoints {
				desired[endpointKey(&g.endpoints[i])] = &g.endpoints[i]
			}
		}
		// Keep each endpoint in the slice that has it.
		placed := map[string]bool{}
		works := make([]*sliceWork, 0, len(existingSlices))
		for _, s := range existingSlices {
			w := &sliceWork{orig: s}
			for i := range s.Endpoints {
				k := endpointKey(&s.Endpoints[i])
				d, ok := desired[k]
				if !ok || placed[k] || len(w.endpoints) >= maxPerSlice {
					continue
				}
				placed[k] = true
				w.endpoints = append(w.endpoints, *d)
			}
			works = append(works, w)
		}
		var remaining []discoveryv1.Endpoint
		if g != nil {
			for i := range g.endpoints {
				if !placed[endpointKey(&g.endpoints[i])] {
					remaining = append(remaining, g.endpoints[i])
				}
			}
		}
		upToDate := func(w *sliceWork) bool {
			eps := slices.Clone(w.endpoints)
			sortEndpoints(eps)
			return sliceEqual(w.orig, want(w.orig, w.orig.AddressType, w.orig.Ports, eps))
		}
		fill := func(w *sliceWork) {
			n := min(maxPerSlice-len(w.endpoints), len(remaining))
			if n > 0 {
				w.endpoints = append(w.endpoints, remaining[:n]...)
				remaining = remaining[n:]
			}
		}
		// New endpoints go first to slices written anyway, then to
		// slices emptied above, and only then to unchanged ones.
		for _, w := range works {
			if len(w.endpoints) > 0 && !upToDate(w) {
				fill(w)
			}
		}
		for _, w := range works {
			if len(w.endpoints) == 0 {
				fill(w)
			}
		}
		for _, w := range works {
			fill(w)
		}
		for len(remaining) > 0 {
			n := min(maxPerSlice, len(remaining))
			eps := slices.Clone(remaining[:n])
			remaining = remaining[n:]
			plan.create = append(plan.create, want(nil, g.addressType, g.ports, eps))
		}
		if g != nil && g.placeholder {
			kept := false
			for _, w := range works {
				kept = kept || len(w.endpoints) > 0
			}
			if !kept && len(works) > 0 {
				works[0].keep = true
			} else if !kept {
				plan.create = append(plan.create, want(nil, g.addressType, g.ports, nil))
			}
		}
		for _, w := range works {
			if len(w.endpoints) == 0 && !w.keep {
				emptied = append(emptied, w.orig)
				continue
			}
			if upToDate(w) {
				continue
			}
			sortEndpoints(w.endpoints)
			plan.update = append(plan.update, want(w.orig, w.orig.AddressType, w.orig.Ports, w.endpoints))
		}
	}

	// Reuse slices that would be deleted for slices that would be
	// created, of the same address type (it is immutable): one update
	// instead of a delete and a create.
	deletes := append(emptied, stale...)
	var creates []*discoveryv1.EndpointSlice
	for _, c := range plan.create {
		i := slices.IndexFunc(deletes, func(d *discoveryv1.EndpointSlice) bool { return d.AddressType == c.AddressType })
		if i < 0 {
			creates = append(creates, c)
			continue
		}
		d := deletes[i]
		deletes = slices.Delete(deletes, i, i+1)
		plan.update = append(plan.update, want(d, c.AddressType, c.Ports, c.Endpoints))
	}
	plan.create = creates
	plan.delete = deletes
	return plan
}

// sliceEqual says whether the slice has the desired content: the fields
// this controller sets, compared semantically (nil and empty alike).
func sliceEqual(cur, want *discoveryv1.EndpointSlice) bool {
	return cur.AddressType == want.AddressType &&
		maps.Equal(cur.Labels, want.Labels) &&
		apiequality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences) &&
		apiequality.Semantic.DeepEqual(cur.Ports, want.Ports) &&
		apiequality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints)
}
