package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// goBuild is one `go build` command line, reduced to what must agree between builds.
type goBuild struct {
	cgo     string // CGO_ENABLED value
	flags   []string
	ldflags string
	pkg     string
}

// parseGoBuild parses the words of a shell command holding `… go build …`. The output path
// (-o) differs between the image and a local build by design and is ignored.
func parseGoBuild(t *testing.T, where string, words []string) goBuild {
	t.Helper()
	i := slices.Index(words, "build")
	if i < 1 || words[i-1] != "go" {
		t.Fatalf("%s: no `go build` in %q", where, words)
	}
	var g goBuild
	for _, w := range words[:i-1] {
		if v, ok := strings.CutPrefix(w, "CGO_ENABLED="); ok {
			g.cgo = v
		}
	}
	args := words[i+1:]
	for j := 0; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "-o":
			j++
		case a == "-ldflags":
			j++
			if j < len(args) {
				g.ldflags = args[j]
			}
		case strings.HasPrefix(a, "-ldflags="):
			g.ldflags = strings.TrimPrefix(a, "-ldflags=")
		case strings.HasPrefix(a, "-o="):
		case strings.HasPrefix(a, "-"):
			g.flags = append(g.flags, a)
		default:
			g.pkg = a
		}
	}
	slices.Sort(g.flags)
	return g
}

// shellWords splits a command line as sh would for simple quoting ('…', "…", backslash-newline);
// variables are left as written.
func shellWords(s string) []string {
	var (
		words  []string
		cur    strings.Builder
		in     rune
		quoted bool
	)
	for _, r := range strings.ReplaceAll(s, "\\\n", " ") {
		switch {
		case in != 0 && r == in:
			in = 0
		case in != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			in, quoted = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if cur.Len() > 0 || quoted {
				words = append(words, cur.String())
				cur.Reset()
				quoted = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 || quoted {
		words = append(words, cur.String())
	}
	return words
}

// dockerfileStages returns the Dockerfile's instructions (continuations joined) per stage.
func dockerfileStages(t *testing.T) [][]string {
	t.Helper()
	var stages [][]string
	var cur string
	for line := range strings.Lines(string(mustRead(t, "../Dockerfile"))) {
		trim := strings.TrimSpace(line)
		if cur == "" && (trim == "" || strings.HasPrefix(trim, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(trim, "\\"); ok {
			cur += s + " "
			continue
		}
		cur += trim
		if strings.HasPrefix(strings.ToUpper(cur), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: instruction before FROM: %q", cur)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], cur)
		cur = ""
	}
	return stages
}

// dockerGoBuild finds the builder stage's go build.
func dockerGoBuild(t *testing.T, builder []string) goBuild {
	t.Helper()
	for _, ins := range builder {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			words := shellWords(strings.TrimPrefix(ins, "RUN "))
			for len(words) > 0 && strings.HasPrefix(words[0], "--") { // --mount=…
				words = words[1:]
			}
			return parseGoBuild(t, "Dockerfile", words)
		}
	}
	t.Fatal("Dockerfile builder stage has no RUN … go build")
	return goBuild{}
}

func TestDockerfile(t *testing.T) {
	stages := dockerfileStages(t)
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages; want 2 (builder, runtime)", len(stages))
	}
	builder, runtime := stages[0], stages[1]

	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mustRead(t, "../go.mod"))
	if goVer == nil {
		t.Fatal("no go directive in ../go.mod")
	}
	if image := "golang:" + string(goVer[1]); !strings.Contains(builder[0], " "+image+" ") && !strings.Contains(builder[0], " "+image+"-") {
		t.Errorf("builder %q; want %s (go.mod's go version)", builder[0], image)
	}
	if want := "FROM gcr.io/distroless/static-debian12:nonroot"; runtime[0] != want {
		t.Errorf("runtime stage %q; want %q", runtime[0], want)
	}
	for _, want := range []string{"USER 65532:65532", `ENTRYPOINT ["/sessionbot"]`, `CMD ["serve"]`, "EXPOSE 9090",
		"COPY --from=build /sessionbot /sessionbot"} {
		if !slices.Contains(runtime, want) {
			t.Errorf("runtime stage lacks %q", want)
		}
	}
	for _, ins := range runtime {
		up := strings.ToUpper(ins)
		if strings.HasPrefix(up, "RUN ") || strings.HasPrefix(up, "ADD ") {
			t.Errorf("runtime stage has %q: the distroless image has no shell and needs nothing added", ins)
		}
		if strings.Contains(ins, "redis-cli") {
			t.Errorf("runtime stage mentions redis-cli: %q", ins)
		}
	}

	g := dockerGoBuild(t, builder)
	if g.cgo != "0" || g.pkg != "./cmd/sessionbot" || !slices.Equal(g.flags, []string{"-trimpath"}) ||
		g.ldflags != "-s -w -X main.version=${VERSION}" {
		t.Errorf("Dockerfile go build = %+v; want CGO_ENABLED=0 go build -trimpath -ldflags \"-s -w -X main.version=${VERSION}\" ./cmd/sessionbot", g)
	}

	for _, line := range strings.Split(string(mustRead(t, "../.dockerignore")), "\n") {
		p := strings.TrimSuffix(strings.TrimSpace(line), "/")
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "bot", "cleanup", "templates", "*.go", "**/*.go", "**/*.tmpl"} {
			if p == needed {
				t.Errorf(".dockerignore excludes %s, which the build needs", needed)
			}
		}
	}
}

// TestMainVersionVariable: -X main.version=… silently sets nothing when the variable is missing,
// and the binary then cannot say which build it is (sessionbot_build_info, --version).
func TestMainVersionVariable(t *testing.T) {
	files, _ := filepath.Glob("../cmd/sessionbot/*.go")
	decl := regexp.MustCompile(`(?m)^(var\s+version\b|\s+version\s+(string\s*)?=)`)
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") && decl.Match(mustRead(t, f)) {
			return
		}
	}
	t.Error("cmd/sessionbot declares no package-level `var version`: the build's -X main.version=… sets nothing")
}

// TestDockerfileMatchesMakefile checks that the image is built exactly like `make build`: the
// recipe is expanded by make itself (make -n), with VERSION set to a marker.
func TestDockerfileMatchesMakefile(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make not found on PATH (Debian: apt-get install make)")
	}
	mustRead(t, "../Makefile")
	const marker = "VERSIONMARKER"
	cmd := exec.Command(makeBin, "-n", "-B", "build", "VERSION="+marker)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	var lines []string
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "go build") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("make -n build runs %d go build commands; want 1:\n%s", len(lines), out)
	}
	mk := parseGoBuild(t, "Makefile", shellWords(lines[0]))
	if mk.cgo == "" && regexp.MustCompile(`(?m)^\s*export\s+CGO_ENABLED\s*[:?]?=\s*0`).Match(mustRead(t, "../Makefile")) {
		mk.cgo = "0"
	}
	mk.ldflags = strings.ReplaceAll(mk.ldflags, marker, "${VERSION}")

	docker := dockerGoBuild(t, dockerfileStages(t)[0])
	if mk.cgo != docker.cgo || !slices.Equal(mk.flags, docker.flags) || mk.ldflags != docker.ldflags || mk.pkg != docker.pkg {
		t.Errorf("go build differs:\n  Makefile:   CGO_ENABLED=%s flags=%v ldflags=%q pkg=%s\n  Dockerfile: CGO_ENABLED=%s flags=%v ldflags=%q pkg=%s",
			mk.cgo, mk.flags, mk.ldflags, mk.pkg, docker.cgo, docker.flags, docker.ldflags, docker.pkg)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
