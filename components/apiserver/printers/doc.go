// Package printers renders API objects as server-side meta.k8s.io/v1 Tables,
// the format kubectl asks for on get, get -w and get -o wide.
//
// It is a hand-written subset of kube-apiserver's printers
// (k8s.io/kubernetes/pkg/printers/internalversion, which cannot be imported):
// for each covered resource the column names, types, formats, priorities and
// descriptions, and the cell values, match kube-apiserver. Like
// kube-apiserver, every row carries the -o wide cells (priority 1 columns);
// kubectl hides them unless asked. Resources without a printer, custom
// resources included, get Name and Age, the way kube-apiserver prints a
// CustomResourceDefinition that declares no printer columns.
//
// The package owns no state and talks to nothing: the apiserver's handlers
// call Table when a request's Accept header asks for as=Table, and set the
// list metadata (resourceVersion, continue) on the result themselves.
//
//	// GET /api/v1/namespaces/default/pods, Accept: application/json;as=Table;v=v1;g=meta.k8s.io
//	tbl := printers.Table("", "pods", pods, r.URL.Query().Get("includeObject"), time.Now())
//	tbl.ResourceVersion = listRV
//	json.NewEncoder(w).Encode(tbl)
//
// Objects are the typed k8s.io/api structs (pointers) or
// *unstructured.Unstructured; an unstructured object of a covered resource is
// converted to its typed struct before printing.
package printers
