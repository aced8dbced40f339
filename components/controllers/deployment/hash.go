package deployment

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/rand"
)

// templateHash is the pod-template-hash of a Deployment's pod template:
// fnv32a over the template and, after a collision, the collision count,
// rendered with rand.SafeEncodeString as kube does. kube feeds the hasher a
// spew dump of the Go value; here it is the JSON encoding, which is as
// deterministic (struct fields in order, map keys sorted). Hashes therefore
// differ from kube's for the same template, which matters to nobody: a
// ReplicaSet is found again by comparing templates, never by its hash.
func templateHash(tmpl *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	// Encoding a PodTemplateSpec cannot fail: it has no channels, funcs or
	// cyclic values.
	b, _ := json.Marshal(tmpl)
	_, _ = h.Write(b)
	if collisionCount != nil {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(*collisionCount))
		_, _ = h.Write(buf[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// equalIgnoreHash reports whether two pod templates are the same but for
// the pod-template-hash label: whether a ReplicaSet runs a Deployment's
// current template.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, LabelPodTemplateHash)
	delete(b.Labels, LabelPodTemplateHash)
	return apiequality.Semantic.DeepEqual(a, b)
}
