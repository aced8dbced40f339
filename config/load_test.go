package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kiln.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad_strict(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings; empty means success
	}{
		{name: "empty file", yaml: ""},
		{name: "valid", yaml: "dataDir: /data\nsources:\n- kind: dir\n  path: /x\n  interval: 0s\n"},
		{name: "unknown top-level field", yaml: "dataDir: /data\nfoo: 1\n", wantErr: []string{`unknown field "foo"`}},
		{name: "unknown nested field", yaml: "sources:\n- kind: dir\n  pth: /x\n", wantErr: []string{`unknown field "sources[0].pth"`}},
		{name: "unknown datastore field", yaml: "datastore:\n  endpoint: [x]\n", wantErr: []string{`unknown field "datastore.endpoint"`}},
		{name: "field case mismatch", yaml: "DataDir: /data\n", wantErr: []string{`unknown field "DataDir"`}},
		{name: "duplicate field", yaml: "dataDir: /a\ndataDir: /b\n", wantErr: []string{`key "dataDir" already set`}},
		{name: "duplicate nested field", yaml: "sources:\n- kind: dir\n  kind: git\n", wantErr: []string{`key "kind" already set`}},
		{name: "duplicate by case", yaml: "dataDir: /a\nDataDir: /b\n", wantErr: []string{`unknown field "DataDir"`}},
		{name: "two unknown fields", yaml: "a: 1\nb: 2\n", wantErr: []string{`unknown field "a"`, `unknown field "b"`}},
		{name: "wrong type", yaml: "dataDir: [1]\n", wantErr: []string{"dataDir"}},
		{name: "bad duration", yaml: "sources:\n- kind: git\n  interval: abc\n", wantErr: []string{`sources[0].interval: invalid duration "abc"`}},
		{name: "number duration", yaml: "datastore:\n  compactMinAge: 300\n", wantErr: []string{`datastore.compactMinAge: want a duration string`}},
		{name: "not a mapping", yaml: "- a\n", wantErr: []string{"cannot unmarshal"}},
		{name: "not yaml", yaml: "{{{", wantErr: []string{"yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, tc.yaml)
			c, err := Load(p)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if c == nil {
					t.Fatal("Load returned nil config")
				}
				return
			}
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("error %q does not start with the file name", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad_missingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load = %v, want error naming %s", err, p)
	}
}

func TestLoad_notDefaulted(t *testing.T) {
	c, err := Load(writeFile(t, "apiListen: 0.0.0.0:6443\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{APIListen: "0.0.0.0:6443"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load = %+v, want %+v", c, want)
	}
}

// The example kiln.yaml must load, default and validate cleanly.
func TestLoad_example(t *testing.T) {
	c, err := Load("kiln.yaml")
	if err != nil {
		t.Fatal(err)
	}
	loaded := *c
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Everything the file sets is the default, so defaulting changes only
	// what the file leaves empty (nodeName, nodeIP).
	loaded.NodeName = c.NodeName
	loaded.NodeIP = c.NodeIP
	if !reflect.DeepEqual(&loaded, c) {
		t.Errorf("example does not show the defaults:\nfile:      %+v\ndefaulted: %+v", loaded, *c)
	}
	if len(c.Sources) != 2 || c.Sources[0].Kind != SourceKindDir || c.Sources[1].Kind != SourceKindGit {
		t.Errorf("example sources = %+v, want one dir and one git", c.Sources)
	}
	if c.Datastore.CompactInterval.Duration != time.Minute {
		t.Errorf("compactInterval = %v", c.Datastore.CompactInterval)
	}
}

// The example kiln.yaml must mention every field, so it stays the reference.
func TestLoad_exampleCoversEveryField(t *testing.T) {
	b, err := os.ReadFile("kiln.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, missing := range missingFields(reflect.TypeFor[Config](), doc, "") {
		t.Errorf("kiln.yaml lacks %s", missing)
	}
}

// missingFields lists the json fields of t absent from v; for a list of
// structs a field counts as present if any element has it.
func missingFields(t reflect.Type, v any, path string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[Duration]() {
		return nil
	}
	m, _ := v.(map[string]any)
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fv, ok := m[name]
		if !ok {
			out = append(out, path+name)
			continue
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
			items, _ := fv.([]any)
			if len(items) == 0 {
				out = append(out, path+name+"[] (empty)")
				continue
			}
			// A field is missing only if every element lacks it.
			counts := map[string]int{}
			for _, it := range items {
				for _, mf := range missingFields(f.Type.Elem(), it, "") {
					counts[mf]++
				}
			}
			for mf, n := range counts {
				if n == len(items) {
					out = append(out, path+name+"[]."+mf)
				}
			}
			continue
		}
		out = append(out, missingFields(f.Type, fv, path+name+".")...)
	}
	return out
}

func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile("kiln.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(example),
		"",
		"dataDir: /a\ndataDir: /b\n",
		"sources:\n- kind: git\n  url: https://h/o/r.git\n  interval: 1s\n  prune: false\n",
		"datastore:\n  compactInterval: -1s\n  endpoints: [http://a:2379]\n",
		"a: &a [*a, *a]\n",
		"sources: [{interval: 5}]\n",
	} {
		f.Add([]byte(seed))
	}
	// One file per worker process, rewritten for each input: the fuzz
	// function runs inputs one at a time, and a TempDir per input slows
	// fuzzing (minimization in particular) several times over.
	p := filepath.Join(f.TempDir(), "kiln.yaml")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a config with error %v", err)
			}
			return
		}
		c.SetDefaults()
		_ = c.Validate()
		if _, err := yaml.Marshal(c); err != nil {
			t.Fatalf("marshal a loaded config: %v", err)
		}
	})
}
