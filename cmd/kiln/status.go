package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/dynamic"

	"kiln.dev/kiln/reconcile"
)

// maxMessage is how many characters of a failure message the table shows.
const maxMessage = 72

func statusCmd() *cobra.Command {
	var cf clientFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show each Source's revision, state and health",
		Long: `Show each Source: the revision last applied, its state (Ready, or why not:
SyncFailed, FetchFailed...), its health, when it last synced, and why it is not
ready. It reads the Source objects through the API.

Exit status: 0 when every source is Ready, 1 when one is not, 2 on an error.`,
	}
	cf.bind(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	answerCmd(cmd, cobra.NoArgs, func(cmd *cobra.Command, _ []string) (int, error) {
		if output != "table" && output != "json" {
			return 2, fmt.Errorf("--output: %q is not table or json", output)
		}
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
		rows := make([]statusRow, 0, len(srcs))
		for _, s := range srcs {
			rows = append(rows, newStatusRow(s))
		}
		if output == "json" {
			err = writeStatusJSON(cmd.OutOrStdout(), rows)
		} else {
			err = writeStatusTable(cmd.OutOrStdout(), rows, time.Now())
		}
		if err != nil {
			return 2, err
		}
		for _, r := range rows {
			if !r.Ready {
				return 1, nil
			}
		}
		return 0, nil
	})
	return cmd
}

// listSources reads every Source, sorted by name.
func listSources(cmd *cobra.Command, dyn dynamic.Interface) ([]reconcile.Source, error) {
	list, err := dyn.Resource(reconcile.SourceGVR).List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	out := make([]reconcile.Source, 0, len(list.Items))
	for _, u := range list.Items {
		var s reconcile.Source
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			return nil, fmt.Errorf("source %s: %w", u.GetName(), err)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b reconcile.Source) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// statusRow is one Source as `kiln status` shows it; -o json prints it
// whole, with the Source's full status.
type statusRow struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Revision is the last applied revision.
	Revision string `json:"revision,omitempty"`
	Ready    bool   `json:"ready"`
	// State is "Ready", or the Ready condition's reason.
	State string `json:"state"`
	// Health is the Healthy condition's reason, "" without one.
	Health string `json:"health,omitempty"`
	// LastSync is when the last sync (successful or not) ended.
	LastSync *metav1.Time `json:"lastSync,omitempty"`
	// Message is the Ready condition's message when not ready.
	Message string                 `json:"message,omitempty"`
	Status  reconcile.SourceStatus `json:"status"`
}

func newStatusRow(s reconcile.Source) statusRow {
	r := statusRow{Name: s.Name, Kind: s.Spec.Kind, Revision: s.Status.LastAppliedRevision, State: "Unknown", Status: s.Status}
	if c := meta.FindStatusCondition(s.Status.Conditions, reconcile.ConditionReady); c != nil {
		r.Ready = c.Status == metav1.ConditionTrue
		switch {
		case r.Ready:
			r.State = "Ready"
		case c.Reason != "":
			r.State = c.Reason
		}
		if !r.Ready {
			r.Message = c.Message
		}
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, reconcile.ConditionHealthy); c != nil {
		switch {
		case c.Reason != "":
			r.Health = c.Reason
		case c.Status == metav1.ConditionTrue:
			r.Health = "Healthy"
		default:
			r.Health = "Unknown"
		}
	}
	if len(s.Status.History) > 0 {
		h := s.Status.History[0]
		end := metav1.NewTime(h.Start.Add(time.Duration(h.DurationMS) * time.Millisecond))
		r.LastSync = &end
	}
	return r
}

func writeStatusJSON(w io.Writer, rows []statusRow) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Sources []statusRow `json:"sources"`
	}{rows})
}

func writeStatusTable(w io.Writer, rows []statusRow, now time.Time) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no sources")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tREVISION\tSTATE\tHEALTH\tLAST SYNC\tMESSAGE")
	for _, r := range rows {
		age := "-"
		if r.LastSync != nil {
			age = duration.HumanDuration(now.Sub(r.LastSync.Time)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.Kind), orDash(shortRevision(r.Revision)),
			r.State, orDash(r.Health), age, shorten(r.Message, maxMessage))
	}
	return tw.Flush()
}

// shortRevision keeps 12 hex digits of a revision's hash:
// "main@sha1:0123456789ab", "sha256:0123456789ab".
func shortRevision(rev string) string {
	i := strings.LastIndexByte(rev, ':')
	if i < 0 || len(rev)-i-1 <= 12 {
		return rev
	}
	return rev[:i+1+12]
}

// shorten is the first line of s, cut to n characters, without tabs
// (they would break the table's columns).
func shorten(s string, n int) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.ReplaceAll(s, "\t", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	if cut {
		return s + " …"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
