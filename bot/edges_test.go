package bot

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/platform-team/sessionbot/"

// packageImports returns what the non-test .go files in dir import, each with the files that
// import it.
func packageImports(t *testing.T, dir string) map[string][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	files := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			out[path] = append(out[path], name)
		}
	}
	if files == 0 {
		t.Fatalf("%s has no Go files: the edge test reads the wrong folder", dir)
	}
	return out
}

// TestPackageEdges keeps the dependencies pointing one way (README, Architecture): the core (bot)
// imports no adapter — neither the Slack transport, the console, slack-go nor a sink; the port
// (bot/chat) and bot/remote are leaves of the standard library alone; the Slack adapter and
// cleanup never import the core. The compiler then refuses any shortcut, since an adapter that
// needs the core is imported by nothing the core builds.
func TestPackageEdges(t *testing.T) {
	adapters := []string{module + "bot/slack", module + "bot/console", module + "bot/pagerduty", module + "bot/email", module + "bot/webhook"}
	for _, tt := range []struct {
		dir       string
		forbidden []string // an import path; one ending in "/" forbids everything below it
		stdOnly   bool
	}{
		{dir: ".", forbidden: append([]string{"github.com/slack-go/"}, adapters...)},
		{dir: "chat", stdOnly: true},
		{dir: "remote", stdOnly: true},
		{dir: "slack", forbidden: append([]string{module + "bot"}, adapters[1:]...)},
		{dir: "../cleanup", forbidden: []string{module + "bot", module + "bot/", "github.com/slack-go/"}},
	} {
		for path, files := range packageImports(t, tt.dir) {
			std := !strings.Contains(strings.Split(path, "/")[0], ".")
			bad := tt.stdOnly && !std
			for _, f := range tt.forbidden {
				if path == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(path, f)) {
					bad = true
				}
			}
			if bad {
				t.Errorf("%s imports %s (in %s): that edge points the wrong way", filepath.Join("bot", tt.dir), path, strings.Join(files, ", "))
			}
		}
	}
}
