package cleanup

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAuditLinesAreTyped keeps every audit line outside this package typed: nobody else calls
// Event or builds an AuditEvent or AuditField by hand, so a line's fields and their order are
// decided by the event types above and nowhere else.
func TestAuditLinesAreTyped(t *testing.T) {
	root := ".."
	seen := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		seen[filepath.Dir(path)]++
		for _, bad := range untypedAuditLines(t, path, nil) {
			t.Errorf("%s: builds an audit line by hand (%s); fill a typed event of cleanup/events.go", bad.pos, bad.what)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"../bot", "../cmd/sessionbot"} {
		if seen[filepath.Clean(dir)] == 0 {
			t.Errorf("no Go files read in %s; the walk missed the call sites", dir)
		}
	}
}

// The check itself finds each way of building a line by hand, under any import name.
func TestUntypedAuditLinesFound(t *testing.T) {
	src := `package x

import (
	"time"

	audit "github.com/platform-team/sessionbot/cleanup"
)

func f(a *audit.Auditor) {
	_ = a.Log(audit.Event(time.Now(), audit.EventRefused, "User", "U1"))
	_ = audit.AuditEvent{Event: "Refused"}
	_ = []audit.AuditField{{Name: "User"}}
	_ = audit.Refused{User: "U1"}.Event(time.Now())
}
`
	got := untypedAuditLines(t, "x.go", []byte(src))
	var whats []string
	for _, b := range got {
		whats = append(whats, b.what)
	}
	if want := "audit.Event(…),audit.AuditEvent{…},audit.AuditField"; strings.Join(whats, ",") != want {
		t.Errorf("found %q; want %q", whats, want)
	}
}

type untypedLine struct{ pos, what string }

// untypedAuditLines parses the Go file at path (or src, when given) and returns where it calls
// cleanup.Event or names cleanup.AuditEvent / cleanup.AuditField in a composite literal or type.
func untypedAuditLines(t *testing.T, path string, src []byte) []untypedLine {
	t.Helper()
	fset := token.NewFileSet()
	var s any
	if src != nil {
		s = src
	}
	f, err := parser.ParseFile(fset, path, s, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	name := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/platform-team/sessionbot/cleanup" {
			name = "cleanup"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" {
		return nil
	}
	isCleanup := func(e ast.Expr, sel string) bool {
		s, ok := e.(*ast.SelectorExpr)
		if !ok || s.Sel.Name != sel {
			return false
		}
		id, ok := s.X.(*ast.Ident)
		return ok && id.Name == name
	}
	var out []untypedLine
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if isCleanup(n.Fun, "Event") {
				out = append(out, untypedLine{fset.Position(n.Pos()).String(), name + ".Event(…)"})
			}
		case *ast.CompositeLit:
			if isCleanup(n.Type, "AuditEvent") {
				out = append(out, untypedLine{fset.Position(n.Pos()).String(), name + ".AuditEvent{…}"})
			}
		case *ast.SelectorExpr:
			if isCleanup(n, "AuditField") {
				out = append(out, untypedLine{fset.Position(n.Pos()).String(), name + ".AuditField"})
			}
		}
		return true
	})
	return out
}
