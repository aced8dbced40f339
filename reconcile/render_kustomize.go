package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/sources"
)

// kustomizeRoot is where the snapshot's files are put in kustomize's
// in-memory filesystem. Only the snapshot is there, so a reference that
// leaves the repository finds nothing (RELIABILITY (b)2).
const kustomizeRoot = "/repo"

// kustomizationFileNames are the file names that make a directory a
// kustomization, as kustomize recognises them.
var kustomizationFileNames = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// kustomizeMu serialises kustomize builds. krusty keeps process-wide state
// (the OpenAPI schema, the builtin plugin factories) that is not safe for
// concurrent use (kubernetes-sigs/kustomize#3659); Flux guards its builds
// the same way. It is the package's only global: the state it protects is
// kustomize's, not ours.
var kustomizeMu sync.Mutex

// tree is the shape of a snapshot: which files and directories exist and
// which directories are kustomizations.
type tree struct {
	files map[string][]byte
	dirs  map[string]bool
	// kustomizations maps every kustomization directory to its
	// kustomization file name.
	kustomizations map[string]string
	// roots are the topmost kustomization directories, sorted.
	roots []string
}

// newTree builds the tree of a snapshot's files and its context (the
// repository's files outside the root, at "../" paths). Kustomizations of
// the context are known, so that those under the root can build on them,
// but are never roots themselves.
func newTree(files, context []sources.File) *tree {
	t := &tree{files: make(map[string][]byte, len(files)+len(context)), dirs: map[string]bool{"": true}, kustomizations: map[string]string{}}
	for _, f := range slices.Concat(files, context) {
		t.files[f.Path] = f.Data
		dir, base := path.Split(f.Path)
		dir = strings.TrimSuffix(dir, "/")
		for d := dir; d != "" && !t.dirs[d]; d = parentDir(d) {
			t.dirs[d] = true
		}
		if slices.Contains(kustomizationFileNames, base) {
			if _, ok := t.kustomizations[dir]; !ok {
				t.kustomizations[dir] = base
			}
		}
	}
	for dir := range t.kustomizations {
		if isOutside(dir) {
			continue
		}
		if root, _ := t.rootOf(dir); root == dir {
			t.roots = append(t.roots, dir)
		}
	}
	slices.Sort(t.roots)
	return t
}

// isOutside reports whether a path of the tree is in the context, outside
// the root.
func isOutside(p string) bool { return p == ".." || strings.HasPrefix(p, "../") }

// parentDir is the directory above dir; "" is the top.
func parentDir(dir string) string {
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		return dir[:i]
	}
	return ""
}

// rootOf returns the topmost kustomization directory among dir and the
// directories above it. Above a directory of the context ("../base") are
// only context directories: the walk stops at "..", never reaching the
// root, which is not above it.
func (t *tree) rootOf(dir string) (string, bool) {
	root, found := "", false
	for d := dir; ; d = parentDir(d) {
		if _, ok := t.kustomizations[d]; ok {
			root, found = d, true
		}
		if d == "" || d == ".." {
			return root, found
		}
	}
}

// kustomizedBy returns the topmost kustomization directory holding file p.
func (t *tree) kustomizedBy(p string) (string, bool) {
	if len(t.kustomizations) == 0 {
		return "", false
	}
	return t.rootOf(parentDir(p))
}

// kustomizationPath is the path Problems and Objects name for a build.
func (t *tree) kustomizationPath(dir string) string {
	return path.Join(dir, t.kustomizations[dir])
}

// renderKustomizations checks every kustomization tree and, when all of
// them pass, builds every topmost kustomization. One failed check stops
// every build: a build follows references into other trees ("../base"),
// so a hostile file or a remote reference anywhere could be reached.
func (r *renderer) renderKustomizations() {
	if len(r.tree.roots) == 0 {
		return
	}
	before := len(r.problems)
	r.checkKustomizeTrees()
	if len(r.problems) > before {
		return
	}
	for _, root := range r.tree.roots {
		r.buildKustomization(root)
	}
}

// checkKustomizeTrees guards every file kustomize may read (every file
// under a kustomization directory: kustomize reads no other) and checks
// the references of every kustomization and builtin plugin config, before
// kustomize sees any of them.
func (r *renderer) checkKustomizeTrees() {
	c := &kustChecker{r: r, guarded: map[string]bool{}, outsideRoots: map[string]bool{}}
	for _, f := range r.snap.Files {
		c.checkFile(f.Path)
	}
	// The context's kustomization trees that the checked ones build on
	// ("../base") are checked the same way, as they are found; the
	// others are not the sync's business.
	for i := 0; i < len(c.outside); i++ {
		root := c.outside[i]
		for _, f := range r.snap.Context {
			if froot, ok := r.tree.kustomizedBy(f.Path); ok && froot == root {
				c.checkFile(f.Path)
			}
		}
	}
	// Files referenced with other extensions (a patch in patch.txt) are
	// guarded too; data files of generators are not YAML to kustomize.
	for _, p := range c.referenced {
		c.guard(p)
	}
}

// checkFile guards and checks p when it is a kustomization file or a
// manifest of a kustomization tree.
func (c *kustChecker) checkFile(p string) {
	if _, ok := c.r.tree.kustomizedBy(p); !ok {
		return
	}
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	isKust := c.r.tree.kustomizations[dir] == base
	if !isKust && !isManifestFile(p) {
		return
	}
	docs := c.guard(p)
	for i := range docs {
		if isKust {
			c.checkKustomization(p, dir, &docs[i])
		} else {
			c.checkPluginConfig(p, &docs[i])
		}
	}
}

// kustChecker checks the kustomization trees of a snapshot.
type kustChecker struct {
	r          *renderer
	guarded    map[string]bool
	referenced []string
	// outside lists the context's kustomization trees referenced so far,
	// in order; outsideRoots is the same as a set.
	outside      []string
	outsideRoots map[string]bool
}

// guard parses a file in guard mode once, records problems, and returns its
// documents (with nodes only).
func (c *kustChecker) guard(p string) []document {
	if c.guarded[p] {
		return nil
	}
	c.guarded[p] = true
	docs, problems := parseFile(p, c.r.tree.files[p], parseGuardOnly, c.r.secrets)
	c.r.problems = append(c.r.problems, problems...)
	for _, d := range docs {
		if d.node == nil {
			// The node parser failed where kustomize's may not: record the
			// Secret values kustomize could put in an error all the same.
			if j, err := yaml.YAMLToJSON(d.text); err == nil {
				var v any
				if json.Unmarshal(j, &v) == nil {
					c.r.secrets.addFromValue(v)
				}
			}
		}
	}
	return docs
}

func (c *kustChecker) problem(p string, d *document, field, msg string) {
	c.r.problems = append(c.r.problems, Problem{Path: p, Index: d.index, Line: c.line(d, field), Field: field, Message: msg})
}

// line is the file line of a field of a kustomize document, or the line
// the document starts at.
func (c *kustChecker) line(d *document, field string) int {
	if d.node != nil && field != "" {
		if l := d.fileLine(nodeLine(d.node, field)); l > 0 {
			return l
		}
	}
	return d.line
}

// refKind says what a reference must name.
type refKind int

const (
	refFileOrDir refKind = iota
	refFile
	// refData is a generator's data file: it must be in the repository but
	// is not guarded as YAML.
	refData
)

// checkKustomization checks the fields of a kustomization that name other
// files, so that kustomize never fetches anything (it would clone git
// repositories with the git binary and GET http URLs) and never leaves the
// repository; and it refuses the fields that reach outside the build. The
// file is decoded exactly as kustomize decodes it (YAML to JSON, then
// encoding/json: aliases and merge keys resolved, keys matched in any
// letter case), so that what is checked is what kustomize will follow.
func (c *kustChecker) checkKustomization(p, dir string, d *document) {
	var k types.Kustomization
	j, err := yaml.YAMLToJSON(d.text)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		err = dec.Decode(&k)
	}
	if err != nil {
		c.problem(p, d, "", "invalid kustomization: "+redactQuoted(firstLine(strings.TrimPrefix(err.Error(), "json: "))))
		return
	}
	ref := func(field, r string, want refKind) { c.checkRef(p, dir, true, d, field, r, want) }
	each := func(name string, refs []string, want refKind) {
		for i, r := range refs {
			ref(fmt.Sprintf("%s[%d]", name, i), r, want)
		}
	}
	each("resources", k.Resources, refFileOrDir)
	each("bases", k.Bases, refFileOrDir)
	each("components", k.Components, refFileOrDir)
	each("crds", k.Crds, refFile)
	each("configurations", k.Configurations, refFile)
	for _, plugins := range []struct {
		name string
		list []string
	}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}} {
		name := plugins.name
		for i, g := range plugins.list {
			field := fmt.Sprintf("%s[%d]", name, i)
			if strings.Contains(g, "\n") {
				c.checkInline(p, d, field, g, true)
				continue
			}
			ref(field, g, refFileOrDir)
		}
	}
	for i, psm := range k.PatchesStrategicMerge {
		field := fmt.Sprintf("patchesStrategicMerge[%d]", i)
		if strings.Contains(string(psm), "\n") {
			c.checkInline(p, d, field, string(psm), false)
			continue
		}
		ref(field, string(psm), refFile)
	}
	for _, patches := range []struct {
		name string
		list []types.Patch
	}{{"patches", k.Patches}, {"patchesJson6902", k.PatchesJson6902}} {
		for i, pt := range patches.list {
			field := fmt.Sprintf("%s[%d]", patches.name, i)
			if pt.Path != "" {
				ref(field+".path", pt.Path, refFile)
			}
			if pt.Patch != "" {
				c.checkInline(p, d, field+".patch", pt.Patch, false)
			}
		}
	}
	for i, rf := range k.Replacements {
		if rf.Path != "" {
			ref(fmt.Sprintf("replacements[%d].path", i), rf.Path, refFile)
		}
	}
	for i, g := range k.ConfigMapGenerator {
		c.checkKvSources(p, dir, true, d, fmt.Sprintf("configMapGenerator[%d]", i), g.KvPairSources, false)
	}
	for i, g := range k.SecretGenerator {
		c.checkKvSources(p, dir, true, d, fmt.Sprintf("secretGenerator[%d]", i), g.KvPairSources, true)
	}
	if len(k.OpenAPI) > 0 {
		c.problem(p, d, "openapi", "not supported: a custom OpenAPI schema changes kustomize's process-wide state for every later build")
	}
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 || k.HelmGlobals != nil {
		field := "helmCharts"
		if len(k.HelmCharts) == 0 {
			field = "helmChartInflationGenerator"
		}
		c.problem(p, d, field, "not supported: kiln does not run Helm")
	}
}

// checkKvSources checks the files of a generator (in a kustomization or a
// builtin plugin config; see checkRef for baseKnown) and records the
// values of a secret generator.
func (c *kustChecker) checkKvSources(p, dir string, baseKnown bool, d *document, field string, kv types.KvPairSources, secret bool) {
	check := func(f, ref string) {
		c.checkRef(p, dir, baseKnown, d, f, ref, refData)
		if !secret || !baseKnown {
			return
		}
		// The files of a secret generator are secret values.
		if data, ok := c.r.tree.files[path.Join(dir, ref)]; ok {
			c.r.secrets.add(string(data))
			for _, l := range strings.Split(string(data), "\n") {
				c.r.secrets.addLiteral(strings.TrimSpace(l))
			}
		}
	}
	for i, f := range kv.FileSources {
		// "[key=]path"
		if _, after, ok := strings.Cut(f, "="); ok {
			f = after
		}
		check(fmt.Sprintf("%s.files[%d]", field, i), f)
	}
	for i, e := range kv.EnvSources {
		check(fmt.Sprintf("%s.envs[%d]", field, i), e)
	}
	if kv.EnvSource != "" {
		check(field+".env", kv.EnvSource)
	}
	if secret {
		for _, l := range kv.LiteralSources {
			c.r.secrets.addLiteral(l)
		}
	}
}

// pathKeys are the fields of builtin plugin configs that name files
// (PatchTransformer.path, PatchStrategicMergeTransformer.paths,
// ReplacementTransformer.replacements[].path, generators' files and envs).
var pathKeys = []string{"path", "paths", "files", "envs", "env"}

// checkPluginConfig checks a document that configures a builtin generator
// or transformer (apiVersion: builtin): its file fields are references
// too. Other plugins are refused by kustomize (builtins only). The
// document is decoded as the plugins decode their config.
func (c *kustChecker) checkPluginConfig(p string, d *document) {
	j, err := yaml.YAMLToJSON(d.text)
	if err != nil {
		return
	}
	var cfg map[string]any
	if json.Unmarshal(j, &cfg) != nil {
		return
	}
	if av, _ := cfg["apiVersion"].(string); !strings.Contains(strings.ToLower(av), "builtin") {
		return
	}
	if kind, _ := cfg["kind"].(string); kind == "HelmChartInflationGenerator" {
		c.problem(p, d, "kind", "not supported: kiln does not run Helm")
		return
	}
	if kind, _ := cfg["kind"].(string); kind == "SecretGenerator" {
		var kv types.KvPairSources
		if json.Unmarshal(j, &kv) == nil {
			for _, l := range kv.LiteralSources {
				c.r.secrets.addLiteral(l)
			}
		}
	}
	// The paths of a plugin config are relative to the kustomization that
	// loads it, which is not known here: check only that they are local.
	c.walkPaths(p, d, cfg, "")
}

// walkPaths checks every field of a plugin config named in pathKeys, at
// any depth and in any letter case.
func (c *kustChecker) walkPaths(p string, d *document, v any, field string) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			f := joinField(field, k)
			if slices.ContainsFunc(pathKeys, func(pk string) bool { return strings.EqualFold(pk, k) }) {
				refs := []any{x[k]}
				if list, ok := x[k].([]any); ok {
					refs = list
				}
				for _, r := range refs {
					if s, ok := r.(string); ok {
						if _, after, ok := strings.Cut(s, "="); ok && strings.EqualFold(k, "files") {
							s = after
						}
						c.checkRef(p, "", false, d, f, s, refFile)
					}
				}
				continue
			}
			c.walkPaths(p, d, x[k], f)
		}
	case []any:
		for i, it := range x {
			c.walkPaths(p, d, it, fmt.Sprintf("%s[%d]", field, i))
		}
	}
}

// checkInline guards an inline patch or plugin config (YAML in a string).
// Its problems are reported at the field's line: the inline document's
// lines are relative to the string.
func (c *kustChecker) checkInline(p string, d *document, field, text string, plugin bool) {
	docs, problems := parseFile(p, []byte(text), parseGuardOnly, c.r.secrets)
	for _, pr := range problems {
		c.problem(p, d, field, pr.Message)
	}
	if !plugin {
		return
	}
	for i := range docs {
		before := len(c.r.problems)
		inner := docs[i]
		c.checkPluginConfig(p, &inner)
		for j := before; j < len(c.r.problems); j++ {
			c.r.problems[j].Index = d.index
			c.r.problems[j].Line = c.line(d, field)
			c.r.problems[j].Field = joinField(field, c.r.problems[j].Field)
		}
	}
}

// checkRef checks one reference: local, relative, inside the repository,
// and present in it. dir is the directory references are relative to;
// baseKnown is false for plugin configs, whose references are relative to
// whichever kustomization loads them: only their form is checked then.
func (c *kustChecker) checkRef(p, dir string, baseKnown bool, d *document, field, ref string, want refKind) {
	ref = strings.TrimSpace(ref)
	switch {
	case ref == "":
		c.problem(p, d, field, "empty reference")
		return
	case looksRemote(ref):
		c.problem(p, d, field, fmt.Sprintf("remote reference %q not allowed: kiln builds only what is in the repository", displayRef(ref)))
		return
	case strings.HasPrefix(ref, "/"):
		c.problem(p, d, field, fmt.Sprintf("absolute path %q not allowed", ref))
		return
	}
	if !baseKnown {
		return
	}
	target := path.Join(dir, ref)
	_, isFile := c.r.tree.files[target]
	isDir := c.r.tree.dirs[target] || target == "."
	if isOutside(target) && !isFile && !isDir {
		// Leaving the repository, or naming what the context does not
		// hold (a dot-folder, a symlink, a file over its limits).
		if strings.Count(target+"/", "../") > subpathDepth(c.r.snap.Subpath) {
			c.problem(p, d, field, fmt.Sprintf("%q is outside the repository", ref))
		} else {
			c.problem(p, d, field, fmt.Sprintf("%q does not exist in the repository (outside the source's subpath, kiln reads regular files only, up to %d MiB)", ref, sources.MaxContextBytes>>20))
		}
		return
	}
	if isDir && isOutside(target) {
		if root, ok := c.r.tree.rootOf(target); ok && !c.outsideRoots[root] {
			c.outsideRoots[root] = true
			c.outside = append(c.outside, root)
		}
	}
	switch {
	case !isFile && !isDir:
		c.problem(p, d, field, fmt.Sprintf("%q does not exist in the repository", ref))
	case isFile && want != refData:
		c.referenced = append(c.referenced, target)
	case isDir && want == refFile:
		c.problem(p, d, field, fmt.Sprintf("%q is a directory, not a file", ref))
	}
}

// displayRef is a remote reference as a message may show it: without the
// credentials of "https://user:token@host/..." and without its query,
// which can carry a token too (STYLE: no tokenised URLs in errors).
func displayRef(ref string) string {
	ref, _, _ = strings.Cut(ref, "?")
	if scheme, rest, ok := strings.Cut(ref, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 && !strings.Contains(rest[:at], "/") {
			rest = rest[at+1:]
		}
		return scheme + "://" + rest
	}
	return ref
}

var scpUserRE = regexp.MustCompile(`^[a-z][a-z0-9-]*@`)

// looksRemote reports whether kustomize would fetch ref over the network or
// clone it with git: any URL, "github.com/..." and "user@host:..." forms
// (see kustomize's internal/git.NewRepoSpecFromURL, which accepts them
// even when a local directory of that name exists).
func looksRemote(ref string) bool {
	s := strings.ToLower(ref)
	s = strings.TrimPrefix(s, "git::")
	return strings.Contains(s, "://") ||
		strings.HasPrefix(s, "github.com/") || strings.HasPrefix(s, "github.com:") ||
		scpUserRE.MatchString(s)
}

// buildKustomization runs kustomize on one topmost kustomization directory
// over an in-memory copy of the snapshot, with builtin plugins only, no
// exec, no Helm and files restricted to each kustomization's directory.
func (r *renderer) buildKustomization(root string) {
	kpath := r.tree.kustomizationPath(root)
	fail := func(msg string) {
		r.problems = append(r.problems, Problem{Path: kpath, Index: -1, Message: msg})
	}
	fs, err := r.kustomizeFS()
	if err != nil {
		fail("kustomize: " + err.Error())
		return
	}
	docs, err := runKustomize(fs, path.Join(r.fsRoot(), root))
	if err != nil {
		fail("kustomize build failed: " + cleanKustomizeError(err, r.fsRoot()))
		return
	}
	total := 0
	for i, j := range docs {
		total += len(j)
		if total > sources.MaxTotalBytes {
			fail(fmt.Sprintf("kustomize build output is larger than %d bytes", sources.MaxTotalBytes))
			return
		}
		r.addDocument(kpath, document{index: i, json: j}, r.secrets)
	}
}

// runKustomize runs one build and returns each resource as JSON.
func runKustomize(fs filesys.FileSystem, dir string) (out [][]byte, err error) {
	kustomizeMu.Lock()
	defer kustomizeMu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("kustomize failed unexpectedly")
		}
	}()
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	opts.AddManagedbyLabel = false
	m, err := krusty.MakeKustomizer(opts).Run(fs, dir)
	if err != nil {
		return nil, err
	}
	for _, res := range m.Resources() {
		j, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", res.CurId(), err)
		}
		out = append(out, j)
	}
	return out, nil
}

// kustomizeFS builds, once per Render, the in-memory filesystem holding
// the snapshot's files under kustomizeRoot.
func (r *renderer) kustomizeFS() (filesys.FileSystem, error) {
	if r.fs != nil {
		return r.fs, nil
	}
	fs := filesys.MakeFsInMemory()
	for _, f := range slices.Concat(r.snap.Files, r.snap.Context) {
		if err := fs.WriteFile(path.Join(r.fsRoot(), f.Path), f.Data); err != nil {
			return nil, fmt.Errorf("copy %s: %w", f.Path, err)
		}
	}
	r.fs = fs
	return fs, nil
}

// fsRoot is where the root of the snapshot is in kustomize's filesystem:
// the repository is at kustomizeRoot, and the root at its subpath, so
// that the context's "../" paths land where they are in the repository.
func (r *renderer) fsRoot() string { return path.Join(kustomizeRoot, r.snap.Subpath) }

// subpathDepth is how many "../" lead from the root to the repository's
// top.
func subpathDepth(subpath string) int {
	if subpath == "" {
		return 0
	}
	return strings.Count(subpath, "/") + 1
}

// maxKustomizeMessage bounds a kustomize error in a Problem: kustomize
// nests the errors of every level of a build into one long line.
const maxKustomizeMessage = 600

// cleanKustomizeError makes a kustomize error readable: paths relative to
// the repository, one line, bounded. Secret values are removed later with
// every other message.
func cleanKustomizeError(err error, root string) string {
	msg := strings.ReplaceAll(err.Error(), root+"/", "")
	msg = strings.ReplaceAll(msg, root, ".")
	// Context files: relative to the repository.
	msg = strings.ReplaceAll(msg, kustomizeRoot+"/", "")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxKustomizeMessage {
		msg = msg[:maxKustomizeMessage] + "…"
	}
	return msg
}
