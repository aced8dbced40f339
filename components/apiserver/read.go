package apiserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/apiserver/printers"
	"kiln.dev/kiln/components/store"
)

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	kv, err := s.store.Get(r.Context(), res.key(ri.namespace, ri.name))
	if err != nil {
		writeError(w, storeError(err, res.gr, ri.name))
		return
	}
	if wantsTable(r) {
		obj, err := res.decodeStored(kv)
		if err != nil {
			writeError(w, err)
			return
		}
		s.writeTable(w, r, res, []runtime.Object{obj}, metav1.ListMeta{ResourceVersion: strconv.FormatInt(kv.ModRevision, 10)})
		return
	}
	data, err := res.servedJSON(kv)
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, mimeJSON, data)
}

func (s *Server) writeTable(w http.ResponseWriter, r *http.Request, res *resource, objs []runtime.Object, lm metav1.ListMeta) {
	include := r.URL.Query().Get("includeObject")
	if include == "" {
		include = "Metadata"
	}
	t := printers.Table(res.Group, res.Name, objs, include, s.now())
	t.ListMeta = lm
	b, err := json.Marshal(t)
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, "application/json;as=Table;v=v1;g=meta.k8s.io", b)
}

// filter is a parsed label and field selector.
type filter struct {
	labels labels.Selector
	fields fields.Selector
}

func (f filter) empty() bool { return f.labels.Empty() && f.fields.Empty() }

func parseFilter(r *http.Request, res *resource) (filter, error) {
	q := r.URL.Query()
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return filter{}, badRequest("unable to parse labelSelector: %v", err)
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return filter{}, badRequest("unable to parse fieldSelector: %v", err)
	}
	supported := fieldLabels(res)
	for _, req := range fs.Requirements() {
		if !supported[req.Field] {
			return filter{}, badRequest("field label not supported: %s", req.Field)
		}
	}
	return filter{labels: ls, fields: fs}, nil
}

// fieldLabels lists the field selectors a resource supports, as kube does
// for the ones kiln's users and components need.
func fieldLabels(res *resource) map[string]bool {
	m := map[string]bool{"metadata.name": true, "metadata.namespace": true}
	if res.Group != "" {
		return m
	}
	switch res.Name {
	case "pods":
		m["spec.nodeName"], m["status.phase"], m["spec.schedulerName"], m["spec.restartPolicy"], m["spec.serviceAccountName"], m["status.podIP"], m["status.nominatedNodeName"] = true, true, true, true, true, true, true
	case "events":
		for _, f := range []string{"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "type", "reportingComponent", "source"} {
			m[f] = true
		}
	case "secrets":
		m["type"] = true
	case "namespaces":
		m["status.phase"] = true
	case "nodes":
		m["spec.unschedulable"] = true
	}
	return m
}

// matches decodes just what selectors read.
func (f filter) matches(res *resource, data []byte) (bool, error) {
	if f.empty() {
		return true, nil
	}
	a, err := attrsOf(res, data)
	if err != nil {
		return false, err
	}
	return f.matchesAttrs(a), nil
}

// matchesAttrs matches already decoded attributes, so a watch cache decodes
// each event once for all its watchers.
func (f filter) matchesAttrs(a objAttrs) bool {
	if !f.labels.Empty() && !f.labels.Matches(a.labels) {
		return false
	}
	return f.fields.Empty() || f.fields.Matches(a.fields)
}

// objAttrs are what label and field selectors read from one object.
type objAttrs struct {
	labels labels.Set
	fields fields.Set
}

// attrsOf decodes just what selectors read.
func attrsOf(res *resource, data []byte) (objAttrs, error) {
	var om struct {
		objectMeta
		Spec struct {
			NodeName           string `json:"nodeName"`
			SchedulerName      string `json:"schedulerName"`
			RestartPolicy      string `json:"restartPolicy"`
			ServiceAccountName string `json:"serviceAccountName"`
			Unschedulable      bool   `json:"unschedulable"`
		} `json:"spec"`
		Status struct {
			Phase             string `json:"phase"`
			PodIP             string `json:"podIP"`
			NominatedNodeName string `json:"nominatedNodeName"`
		} `json:"status"`
		Source struct {
			Component string `json:"component"`
		} `json:"source"`
		ReportingComponent string `json:"reportingComponent"`
	}
	if err := json.Unmarshal(data, &om); err != nil {
		return objAttrs{}, err
	}
	set := fields.Set{"metadata.name": om.Metadata.Name, "metadata.namespace": om.Metadata.Namespace}
	if res.Group == "" {
		switch res.Name {
		case "pods":
			set["spec.nodeName"] = om.Spec.NodeName
			set["status.phase"] = om.Status.Phase
			set["spec.schedulerName"] = om.Spec.SchedulerName
			set["spec.restartPolicy"] = om.Spec.RestartPolicy
			set["spec.serviceAccountName"] = om.Spec.ServiceAccountName
			set["status.podIP"] = om.Status.PodIP
			set["status.nominatedNodeName"] = om.Status.NominatedNodeName
		case "events":
			for _, k := range []string{"kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"} {
				v, _ := om.InvolvedObject[k].(string)
				set["involvedObject."+k] = v
			}
			set["reason"], set["type"], set["source"], set["reportingComponent"] = om.Reason, om.Type, om.Source.Component, om.ReportingComponent
		case "secrets":
			set["type"] = om.Type
		case "namespaces":
			set["status.phase"] = om.Status.Phase
		case "nodes":
			set["spec.unschedulable"] = strconv.FormatBool(om.Spec.Unschedulable)
		}
	}
	return objAttrs{labels: labels.Set(om.Metadata.Labels), fields: set}, nil
}

// continueToken is the opaque paging cursor: the revision of the first
// page and the key to resume after.
type continueToken struct {
	Rev   int64  `json:"rv"`
	Start string `json:"start"`
}

func encodeContinue(rev int64, start string) string {
	b, _ := json.Marshal(continueToken{Rev: rev, Start: start})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Rev <= 0 || t.Start == "" {
		return t, badRequest("invalid continue token")
	}
	return t, nil
}

// listResult is one page of matching objects at one revision.
type listResult struct {
	items     []store.KV
	rev       int64
	cont      string
	remaining *int64
}

// list reads the matching objects, following kube's paging rules: every
// page is read at the first page's revision, and a token whose revision
// was compacted answers 410.
func (s *Server) list(r *http.Request, res *resource, namespace string, f filter) (listResult, error) {
	q := r.URL.Query()
	var limit int64
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n < 0 {
			return listResult{}, badRequest("invalid limit %q", l)
		}
		limit = n
	}
	prefix := res.listPrefix(namespace)
	opts := store.ListOptions{}
	if c := q.Get("continue"); c != "" {
		t, err := decodeContinue(c)
		if err != nil {
			return listResult{}, err
		}
		opts.Revision, opts.StartKey = t.Rev, t.Start
		if len(opts.StartKey) <= len(prefix) || opts.StartKey[:len(prefix)] != prefix {
			return listResult{}, badRequest("continue token does not belong to this list")
		}
	} else if rv := q.Get("resourceVersion"); rv != "" && rv != "0" && q.Get("resourceVersionMatch") == "Exact" {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil {
			return listResult{}, badRequest("invalid resourceVersion %q", rv)
		}
		opts.Revision = n
	}
	var out listResult
	for {
		if limit > 0 {
			opts.Limit = limit - int64(len(out.items))
			if !f.empty() && opts.Limit < 100 {
				opts.Limit = 100 // read ahead when filtering
			}
		}
		page, err := s.store.List(r.Context(), prefix, opts)
		if err != nil {
			if err == store.ErrCompacted || isCompacted(err) {
				return listResult{}, apierrors.NewResourceExpired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.")
			}
			return listResult{}, err
		}
		out.rev = page.Revision
		opts.Revision = page.Revision
		for i, kv := range page.KVs {
			ok, err := f.matches(res, kv.Value)
			if err != nil {
				return listResult{}, err
			}
			if ok {
				out.items = append(out.items, kv)
			}
			if limit > 0 && int64(len(out.items)) == limit {
				if i < len(page.KVs)-1 || page.More {
					out.cont = encodeContinue(page.Revision, kv.Key+"\x00")
					if f.empty() {
						rem := page.Remaining + int64(len(page.KVs)-1-i)
						out.remaining = &rem
					}
				}
				return out, nil
			}
		}
		if !page.More || len(page.KVs) == 0 {
			return out, nil
		}
		opts.StartKey = page.KVs[len(page.KVs)-1].Key + "\x00"
	}
}

func isCompacted(err error) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte("compacted"))
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	f, err := parseFilter(r, res)
	if err != nil {
		writeError(w, err)
		return
	}
	lr, err := s.list(r, res, ri.namespace, f)
	if err != nil {
		writeError(w, err)
		return
	}
	lm := metav1.ListMeta{ResourceVersion: strconv.FormatInt(lr.rev, 10), Continue: lr.cont, RemainingItemCount: lr.remaining}
	if wantsTable(r) {
		objs := make([]runtime.Object, 0, len(lr.items))
		for _, kv := range lr.items {
			obj, err := res.decodeStored(kv)
			if err != nil {
				writeError(w, err)
				return
			}
			objs = append(objs, obj)
		}
		s.writeTable(w, r, res, objs, lm)
		return
	}
	var b bytes.Buffer
	b.Grow(64 + len(lr.items)*2048)
	b.WriteString(`{"kind":`)
	kb, _ := json.Marshal(res.ListKind)
	b.Write(kb)
	b.WriteString(`,"apiVersion":`)
	vb, _ := json.Marshal(res.GroupVersion().String())
	b.Write(vb)
	b.WriteString(`,"metadata":`)
	mb, _ := json.Marshal(lm)
	b.Write(mb)
	b.WriteString(`,"items":[`)
	for i, kv := range lr.items {
		if i > 0 {
			b.WriteByte(',')
		}
		data, err := res.servedJSON(kv)
		if err != nil {
			writeError(w, err)
			return
		}
		b.Write(data)
	}
	b.WriteString("]}")
	writeRaw(w, http.StatusOK, mimeJSON, b.Bytes())
}
