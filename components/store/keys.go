package store

import "strings"

// registryPrefix roots every Kubernetes object key, as kube-apiserver does.
const registryPrefix = "/registry/"

// Key is the etcd key of one object:
// /registry/<group>/<resource>/<namespace>/<name>, without the group for the
// core group and without the namespace for cluster-scoped resources.
func Key(group, resource, namespace, name string) string {
	return Prefix(group, resource, namespace) + name
}

// Prefix is the key prefix of all objects of a resource, or of those in one
// namespace when namespace is set. It always ends in "/", so "events" never
// matches "events.k8s.io".
func Prefix(group, resource, namespace string) string {
	var b strings.Builder
	b.WriteString(registryPrefix)
	if group != "" {
		b.WriteString(group)
		b.WriteByte('/')
	}
	b.WriteString(resource)
	b.WriteByte('/')
	if namespace != "" {
		b.WriteString(namespace)
		b.WriteByte('/')
	}
	return b.String()
}
