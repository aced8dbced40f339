package config

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDuration_JSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    time.Duration
		wantErr bool
	}{
		{name: "seconds", json: `"15s"`, want: 15 * time.Second},
		{name: "compound", json: `"1m30s"`, want: 90 * time.Second},
		{name: "negative", json: `"-1s"`, want: -time.Second},
		{name: "null keeps zero", json: `null`},
		{name: "number", json: `15`, wantErr: true},
		{name: "garbage", json: `"abc"`, wantErr: true},
		{name: "bool", json: `true`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tc.json), &d)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Unmarshal(%s) error = %v, wantErr %v", tc.json, err, tc.wantErr)
			}
			if d.Duration != tc.want {
				t.Errorf("Unmarshal(%s) = %v, want %v", tc.json, d.Duration, tc.want)
			}
		})
	}
}

func TestDuration_MarshalJSON(t *testing.T) {
	b, err := json.Marshal(Source{Interval: Duration{15 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"interval":"15s"}`; got != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	b, err = json.Marshal(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{}`; got != want {
		t.Errorf("Marshal(Config{}) = %s, want %s (zero fields omitted)", got, want)
	}
}
