package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Load reads the YAML file at path strictly: a duplicate key, an unknown
// field (matched case-sensitively, so "DataDir" is unknown too) or a value of
// the wrong type is an error naming the file and the field. It returns the
// file as written, without defaults: the caller applies flags, then
// SetDefaults, then Validate. An empty file is an empty Config.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parse decodes kiln.yaml. sigs.k8s.io/yaml.UnmarshalStrict alone would
// match keys case-insensitively (encoding/json) and would not say where a
// nested unknown field is, so the YAML is converted with YAMLToJSONStrict
// (duplicate keys) and decoded with sigs.k8s.io/json, the decoder the
// Kubernetes API server uses for strict field validation.
func parse(b []byte) (*Config, error) {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return nil, err
	}
	var c Config
	strict, err := kjson.UnmarshalStrict(j, &c)
	if err != nil {
		// A decoder error from Duration.UnmarshalJSON carries no field path;
		// find the offending field ourselves.
		if derr := durationErrors(j); derr != nil {
			return nil, derr
		}
		return nil, err
	}
	if len(strict) > 0 {
		return nil, errors.Join(strict...)
	}
	return &c, nil
}

// durationErrors re-reads the JSON generically and names every Duration
// field whose value does not parse, e.g. `sources[0].interval: invalid
// duration "abc"`.
func durationErrors(j []byte) error {
	var v any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &v); err != nil {
		return nil
	}
	var errs []error
	walkDurations(reflect.TypeFor[Config](), v, "", &errs)
	return errors.Join(errs...)
}

func walkDurations(t reflect.Type, v any, path string, errs *[]error) {
	switch t.Kind() {
	case reflect.Pointer:
		walkDurations(t.Elem(), v, path, errs)
	case reflect.Slice:
		items, _ := v.([]any)
		for i, item := range items {
			walkDurations(t.Elem(), item, fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Struct:
		if t == reflect.TypeFor[Duration]() {
			if v == nil {
				return
			}
			var d Duration
			b, err := json.Marshal(v)
			if err == nil {
				err = d.UnmarshalJSON(b)
			}
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", path, err))
			}
			return
		}
		m, _ := v.(map[string]any)
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if fv, ok := m[name]; ok {
				p := name
				if path != "" {
					p = path + "." + name
				}
				walkDurations(f.Type, fv, p, errs)
			}
		}
	}
}
