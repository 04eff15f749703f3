package controllermanager

import "testing"

// --controllers reads as upstream's: "*" keeps defaults, "name" turns on, "-name" turns off.
func TestEnabled(t *testing.T) {
	cases := []struct {
		name      string
		list      []string
		onDefault bool
		want      bool
	}{
		{"empty list, on by default", nil, true, true},
		{"empty list, off by default", nil, false, false},
		{"star, on by default", []string{"*"}, true, true},
		{"star, off by default", []string{"*"}, false, false},
		{"named, off by default", []string{"*", "tokencleaner"}, false, true},
		{"disabled", []string{"*", "-tokencleaner"}, true, false},
		{"not named without star", []string{"csrsigning"}, true, false},
		{"upstream's current name", []string{"*", "-token-cleaner-controller"}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Enabled(tc.list, []string{"token-cleaner-controller", "tokencleaner"}, tc.onDefault); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
