package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("15s",
// "1m30s") in YAML and JSON. Bare numbers are rejected: "interval: 15" is
// ambiguous between seconds and nanoseconds.
type Duration struct{ time.Duration }

// MarshalJSON writes d as a duration string such as "15s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.String())
}

// UnmarshalJSON reads a duration string; null leaves d unchanged.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"15s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want e.g. \"15s\" or \"1m30s\"", s)
	}
	d.Duration = v
	return nil
}
