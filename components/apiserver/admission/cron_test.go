package admission

import "testing"

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		name     string
		schedule string
		wantErr  bool
	}{
		{"every minute", "* * * * *", false},
		{"every 15 minutes", "*/15 * * * *", false},
		{"ranges and lists", "0,30 9-17 * * 1-5", false},
		{"names", "0 0 1 JAN,jul SUN", false},
		{"name range", "0 12 * * MON-FRI", false},
		{"question mark", "0 0 ? * *", false},
		{"start and step", "5/10 * * * *", false},
		{"range and step", "0-30/10 * * * *", false},
		{"extra spaces", "  0  0 *  * *  ", false},
		{"hourly", "@hourly", false},
		{"daily", "@daily", false},
		{"midnight", "@midnight", false},
		{"weekly", "@weekly", false},
		{"monthly", "@monthly", false},
		{"yearly", "@yearly", false},
		{"annually", "@annually", false},
		{"every", "@every 90s", false},
		{"empty", "", true},
		{"four fields", "* * * *", true},
		{"six fields", "0 * * * * *", true},
		{"minute 60", "60 * * * *", true},
		{"hour 24", "0 24 * * *", true},
		{"day 0", "0 0 0 * *", true},
		{"month 13", "0 0 1 13 *", true},
		{"weekday 7", "0 0 * * 7", true},
		{"bad name", "0 0 * FOO *", true},
		{"reversed range", "0 17-9 * * *", true},
		{"zero step", "*/0 * * * *", true},
		{"two slashes", "*/2/3 * * * *", true},
		{"two hyphens", "1-2-3 * * * *", true},
		{"negative", "-1 * * * *", true},
		{"words", "every day", true},
		{"unknown descriptor", "@fortnightly", true},
		{"bad every", "@every soon", true},
		{"zone prefix skipped", "CRON_TZ=UTC 0 0 * * *", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := parseSchedule(tc.schedule)
			if (err != nil) != tc.wantErr {
				t.Errorf("parseSchedule(%q) = %v, want error %v", tc.schedule, err, tc.wantErr)
			}
		})
	}
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"*/5 * * * *", "@every 1h", "0 0 1-31/2 JAN-DEC SUN-SAT", "TZ=UTC 1 2 3 4 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseSchedule(s)
	})
}
