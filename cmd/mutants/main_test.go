package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The table follows the code: every snippet occurs exactly once in its file today. `make test`
// says so at once, without waiting for `make mutants`.
func TestTableIsCurrent(t *testing.T) {
	if err := checkTable(filepath.Join("..", ".."), mutations); err != nil {
		t.Errorf("mutations.go is stale:\n%v", err)
	}
}

// A snippet that is missing, or occurs twice, fails the check loudly, as do malformed entries.
func TestCheckTableRejects(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "a.go"), []byte("x := 1\ny := 2\ny := 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok := mutation{Name: "ok", Rule: "r", File: "a.go", From: "x := 1", To: "x := 2", Pkgs: []string{"./"}, Run: "^TestX$"}
	tests := []struct {
		name string
		edit func(*mutation)
		want string
	}{
		{"missing snippet", func(m *mutation) { m.From = "z := 3" }, "0 times"},
		{"snippet twice", func(m *mutation) { m.From = "y := 2" }, "2 times"},
		{"missing file", func(m *mutation) { m.File = "b.go" }, "b.go"},
		{"no-op", func(m *mutation) { m.To = m.From }, "To equals From"},
		{"two lines", func(m *mutation) { m.To = "x := 2\nx++" }, "one line"},
		{"bad regexp", func(m *mutation) { m.Run = "(" }, "Run:"},
		{"no packages", func(m *mutation) { m.Pkgs = nil }, "every field"},
	}
	if err := checkTable(root, []mutation{ok}); err != nil {
		t.Fatalf("checkTable(valid entry) = %v; want nil", err)
	}
	for _, tt := range tests {
		m := ok
		tt.edit(&m)
		err := checkTable(root, []mutation{m})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: checkTable = %v; want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	if err := checkTable(root, []mutation{ok, ok}); err == nil || !strings.Contains(err.Error(), "name used twice") {
		t.Errorf("duplicate names: checkTable = %v; want an error", err)
	}
}

// apply tells a mutation a test catches from one no test catches and from one that does not
// compile, and leaves the file as it found it.
func TestApplyClassifies(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":       "module example.com/m\n\ngo 1.22\n",
		"rule.go":      "package m\n\nfunc Allowed(n int) bool { return n <= 10 }\n\nfunc Unused() int { return 1 }\n",
		"rule_test.go": "package m\n\nimport \"testing\"\n\nfunc TestAllowed(t *testing.T) {\n\tif Allowed(11) {\n\t\tt.Error(\"11 allowed\")\n\t}\n}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := mutation{Rule: "at most 10", File: "rule.go", Pkgs: []string{"./"}, Run: "^TestAllowed$"}
	tests := []struct {
		name, from, to, want, detail string
	}{
		{"caught", "n <= 10", "n <= 11", statusKilled, "by TestAllowed"},
		{"not caught", "return 1", "return 2", statusSurvived, "no test failed"},
		{"does not compile", "return 1", `return "1"`, statusBroken, "does not compile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			m.Name, m.From, m.To = tt.name, tt.from, tt.to
			r, err := apply(context.Background(), dir, m, time.Minute)
			if err != nil {
				t.Fatalf("apply = %v", err)
			}
			if r.status != tt.want || !strings.Contains(r.detail, tt.detail) {
				t.Errorf("apply(%s → %s) = %s %q; want %s %q\n%s", tt.from, tt.to, r.status, r.detail, tt.want, tt.detail, r.output)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, "rule.go")); string(got) != files["rule.go"] {
				t.Errorf("rule.go not restored:\n%s", got)
			}
		})
	}
}
