package apiserver

import (
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/components/store"
)

// ErrRunTwice is returned by Run when it is called a second time.
var ErrRunTwice = errors.New("apiserver: Run called twice")

// maxBodyBytes is kube-apiserver's request body limit.
const maxBodyBytes = 3 * 1024 * 1024

// writeError sends err as a metav1.Status with its code.
func writeError(w http.ResponseWriter, err error) {
	st := toStatus(err)
	writeJSON(w, int(st.Code), st)
}

func toStatus(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		st := se.Status()
		st.Kind, st.APIVersion = "Status", "v1"
		return &st
	}
	st := apierrors.NewInternalError(err).ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	return &st
}

// storeError turns a store error on one object into the API error kube
// would send.
func storeError(err error, gr schema.GroupResource, name string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, store.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(registryConflictMsg))
	case errors.Is(err, store.ErrTooLarge):
		// The body fit maxBodyBytes but the stored JSON did not fit etcd's
		// request limit (JSON escapes and protobuf bodies grow when stored).
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the stored form of %s %q is larger than the datastore accepts (%d bytes)",
			gr.String(), name, store.DefaultMaxRequestBytes))
	case errors.Is(err, store.ErrPrecondition):
		// An allocation (ClusterIP, NodePort) was taken by a concurrent
		// write; the client may retry.
		return apierrors.NewConflict(gr, name, errors.New("an address or port it asks for was just taken; please try again"))
	case errors.Is(err, store.ErrCompacted):
		return apierrors.NewResourceExpired("too old resource version")
	}
	return err
}

// registryConflictMsg is kube's wording, which kubectl and people grep for.
const registryConflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

func invalid(gk schema.GroupKind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(gk, name, errs)
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}
