package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

func diffCmd() *cobra.Command {
	var cf clientFlags
	var sourceName, namespace string
	cmd := &cobra.Command{
		Use:   "diff PATH",
		Short: "show what syncing a local folder would create, change and prune",
		Long: `Render the folder PATH as a dir source would read it, and show what a sync of it
by a Source would do: the objects it would create, the fields it would change
(from a server-side dry run of the same three-way patch a sync sends) and the
objects it would prune. Nothing is written. Values of Secrets are never shown.

The Source is the only one, or --source. Objects without a namespace get
--namespace, else the Source's namespace.

Exit status: 0 when a sync would change nothing, 1 when it would, 2 on an
error (a render error lists every problem by file).`,
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVar(&sourceName, "source", "", "Source to compare with (default: the only one)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "namespace of objects that name none (default: the Source's)")
	answerCmd(cmd, cobra.ExactArgs(1), func(cmd *cobra.Command, args []string) (int, error) {
		ctx := cmd.Context()
		rc, err := cf.restConfig()
		if err != nil {
			return 2, err
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return 2, err
		}
		srcs, err := listSources(cmd, dyn)
		if err != nil {
			return 2, err
		}
		src, err := pickSource(srcs, sourceName)
		if err != nil {
			return 2, err
		}
		snap, err := dir.Read(ctx, src.Name, args[0])
		if err != nil {
			return 2, fmt.Errorf("read %s: %w", args[0], err)
		}
		dc, err := discovery.NewDiscoveryClientForConfig(rc)
		if err != nil {
			return 2, err
		}
		mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
		if namespace == "" {
			namespace = src.Spec.Namespace
		}
		objs, err := reconcile.Render(snap, reconcile.RenderOptions{DefaultNamespace: namespace, Scope: mapperScope(mapper)})
		if rerr, ok := errors.AsType[*reconcile.RenderError](err); ok {
			// Every problem, not RenderError's first twenty: CI shows them
			// all at once.
			fmt.Fprintf(cmd.ErrOrStderr(), "kiln diff: %s does not render:\n", args[0])
			for _, p := range rerr.Problems {
				fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", p)
			}
			return 2, nil
		}
		if err != nil {
			return 2, err
		}
		res, err := reconcile.Diff(ctx, rc, objs, reconcile.DiffOptions{Source: src.Name, Revision: snap.Revision,
			Inventory: src.Status.Inventory, Prune: src.Spec.Prune, AllowEmpty: src.Spec.AllowEmpty, Mapper: mapper})
		if err != nil {
			return 2, err
		}
		if err := writeDiff(cmd.OutOrStdout(), src.Name, len(objs), res); err != nil {
			return 2, err
		}
		if res.Empty() {
			return 0, nil
		}
		return 1, nil
	})
	return cmd
}

// pickSource is the Source named name, or the only one.
func pickSource(srcs []reconcile.Source, name string) (reconcile.Source, error) {
	names := make([]string, 0, len(srcs))
	for _, s := range srcs {
		if s.Name == name || (name == "" && len(srcs) == 1) {
			return s, nil
		}
		names = append(names, s.Name)
	}
	switch {
	case len(srcs) == 0:
		return reconcile.Source{}, errors.New("the cluster has no Source: there is nothing to compare with")
	case name == "":
		return reconcile.Source{}, fmt.Errorf("%d sources (%s): choose one with --source", len(srcs), strings.Join(names, ", "))
	}
	return reconcile.Source{}, fmt.Errorf("no source %q (have %s)", name, strings.Join(names, ", "))
}

// mapperScope answers Render's question from discovery, refreshing it
// once for a kind it does not know (as the reconciler does).
func mapperScope(m *restmapper.DeferredDiscoveryRESTMapper) reconcile.ScopeFunc {
	return func(gvk schema.GroupVersionKind) (namespaced, known bool) {
		rm, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil && meta.IsNoMatchError(err) {
			m.Reset()
			rm, err = m.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return false, false
		}
		return rm.Scope.Name() == meta.RESTScopeNameNamespace, true
	}
}

// writeDiff prints the result: a section per action, each change as a
// unified diff of its changed fields, one "path: value" line per side
// ("~path: (changed)" for a value that is not shown), then a summary.
func writeDiff(w io.Writer, source string, objects int, res *reconcile.DiffResult) error {
	ew := &errWriter{w: w}
	if res.Empty() {
		ew.printf("no changes: source %s is in sync with the folder (%d objects)\n", source, objects)
		return ew.err
	}
	section := func(title string, objs []reconcile.DiffObject, fields bool) {
		if len(objs) == 0 {
			return
		}
		ew.printf("%s:\n", title)
		for _, o := range objs {
			if o.Path != "" {
				ew.printf("  %s  (%s)\n", o.Object, o.Path)
			} else {
				ew.printf("  %s\n", o.Object)
			}
			if !fields {
				continue
			}
			ew.printf("    --- live\n    +++ %s\n", o.Path)
			for _, f := range o.Fields {
				writeField(ew, f)
			}
		}
	}
	section("create", res.Create, false)
	section("change", res.Change, true)
	section("prune", res.Prune, false)
	ew.printf("\nsource %s: %d to create, %d to change, %d to prune\n", source, len(res.Create), len(res.Change), len(res.Prune))
	return ew.err
}

func writeField(ew *errWriter, f reconcile.FieldDiff) {
	switch {
	case f.Redacted && f.Live != "" && f.Desired != "":
		ew.printf("    ~%s: (changed)\n", f.Field)
	case f.Redacted && f.Desired != "":
		ew.printf("    +%s: (added)\n", f.Field)
	case f.Redacted:
		ew.printf("    -%s: (removed)\n", f.Field)
	default:
		if f.Live != "" {
			ew.printf("    -%s: %s\n", f.Field, f.Live)
		}
		if f.Desired != "" {
			ew.printf("    +%s: %s\n", f.Field, f.Desired)
		}
	}
}

// errWriter keeps the first write error, so printing code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
