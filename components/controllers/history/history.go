// Package history holds what the DaemonSet and StatefulSet controllers
// share about ControllerRevisions, as kube's pkg/controller/history does:
// a revision's name, its data (the patch that restores a Pod template)
// and the hash that tells templates apart.
package history

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"reflect"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Name is kube's ControllerRevisionName: the owner's name, shortened to
// leave room, and the hash.
func Name(prefix, hash string) string {
	if len(prefix) > 223 {
		prefix = prefix[:223]
	}
	return prefix + "-" + hash
}

// TemplatePatch is what kube's DaemonSet and StatefulSet controllers store
// in a ControllerRevision (their getPatch): a strategic merge patch that
// puts the owner's Pod template back, whole.
func TemplatePatch(t *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// SameData compares two revisions' data as JSON values, so that a server
// that re-encodes it (key order, spacing) does not make the current
// template look new.
func SameData(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Hash is an FNV hash of data and the owner's collisionCount, in the
// alphabet kube's hashes use. A hash collision (another revision by that
// name with other data) bumps the count, and with it the hash.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(*collisionCount))
		h.Write(n[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
