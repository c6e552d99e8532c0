// Command mutants is `make mutants`: it breaks each safety rule listed in mutations.go with a
// one-line change, in a scratch copy of the repository, and checks that a test notices. A rule
// whose mutation no test kills is a rule the suite only claims to check.
//
// The scratch copy holds the repository's files as they are in the working tree: tracked files
// with their uncommitted edits, and new files git does not ignore (a test being written counts).
// The tests named in the table first run once on the unmutated copy and must pass. Then the
// mutations run one after another, each with `go test -count=1 -failfast -run RE PKGS` (no
// -race: speed). It prints one line per mutation and exits non-zero when a mutation survives,
// when a snippet no longer occurs exactly once in its file (the table must follow the code,
// never rot silently), or when a mutated tree does not compile.
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mutants", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("only", "", "run only the mutations whose name matches this regexp")
	list := fs.Bool("list", false, "check every snippet and list the mutations; run no test")
	verbose := fs.Bool("v", false, "print the go test output of mutations that survive or do not compile")
	timeout := fs.Duration("timeout", 3*time.Minute, "go test -timeout for each mutation")
	parallel := fs.Int("parallel", 2, "mutations tested at once, each in its own copy of the tree")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	root, err := gitOutput(ctx, ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return err
	}
	root = strings.TrimSpace(root)

	selected := mutations
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return fmt.Errorf("-only: %w", err)
		}
		selected = nil
		for _, m := range mutations {
			if re.MatchString(m.Name) {
				selected = append(selected, m)
			}
		}
		if len(selected) == 0 {
			return fmt.Errorf("-only %q matches no mutation", *only)
		}
	}
	// Every entry is checked, selected or not, so that a stale one fails every run.
	if err := checkTable(root, mutations); err != nil {
		return err
	}
	if *list {
		for _, m := range selected {
			fmt.Fprintf(stdout, "%-28s %s\n%28s %s:  %s  →  %s\n%28s go test -run '%s' %s\n",
				m.Name, m.Rule, "", m.File, m.From, m.To, "", m.Run, strings.Join(m.Pkgs, " "))
		}
		return nil
	}

	// Each worker mutates its own copy of the tree: a mutation is applied, tested and undone
	// there, never seen by another worker's tests.
	workers := min(max(*parallel, 1), len(selected))
	scratches := make([]string, workers)
	var n int
	for i := range scratches {
		dir, err := os.MkdirTemp("", "sessionbot-mutants-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if n, err = copyTree(ctx, root, dir); err != nil {
			return err
		}
		scratches[i] = dir
	}
	fmt.Fprintf(stdout, "mutants: %d mutations, %d at a time, each worker on its own copy of %d files (%s)\n",
		len(selected), workers, n, strings.Join(scratches, ", "))

	start := time.Now()
	took, err := baseline(ctx, scratches[0], selected, *timeout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-9s %-28s %6.1fs  %s\n", "ok", "(no mutation)", took.Seconds(), "the tests named below pass on the unmutated copy")

	type done struct {
		m   mutation
		r   result
		err error
	}
	todo := make(chan mutation)
	results := make(chan done)
	for _, dir := range scratches {
		go func() {
			for m := range todo {
				r, err := apply(ctx, dir, m, *timeout)
				results <- done{m, r, err}
			}
		}()
	}
	go func() {
		defer close(todo)
		for _, m := range selected {
			select {
			case todo <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	var survived, broken []string
	var firstErr error
	for range selected {
		var d done
		select {
		case d = <-results:
		case <-ctx.Done():
			return ctx.Err()
		}
		m, r := d.m, d.r
		if d.err != nil {
			firstErr = cmp.Or(firstErr, fmt.Errorf("%s: %w", m.Name, d.err))
			continue
		}
		fmt.Fprintf(stdout, "%-9s %-28s %6.1fs  %s\n", r.status, m.Name, r.took.Seconds(), r.detail)
		switch r.status {
		case statusSurvived:
			survived = append(survived, m.Name)
		case statusBroken:
			broken = append(broken, m.Name)
		}
		if *verbose && r.status != statusKilled {
			stdout.Write(r.output)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	fmt.Fprintf(stdout, "mutants: %d killed, %d survived, %d did not compile; %.0fs\n",
		len(selected)-len(survived)-len(broken), len(survived), len(broken), time.Since(start).Seconds())
	var errs []error
	if len(survived) > 0 {
		errs = append(errs, fmt.Errorf("no test failed for %s: write the test that catches it", strings.Join(survived, ", ")))
	}
	if len(broken) > 0 {
		errs = append(errs, fmt.Errorf("%s did not compile once mutated: fix the table (-v shows why)", strings.Join(broken, ", ")))
	}
	return errors.Join(errs...)
}

// checkTable reports every malformed entry at once: duplicate names, missing fields, and
// snippets that do not occur exactly once in the working tree's file.
func checkTable(root string, ms []mutation) error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range ms {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("mutation %q: %s", m.Name, fmt.Sprintf(format, a...)))
		}
		if seen[m.Name] {
			bad("name used twice")
		}
		seen[m.Name] = true
		switch {
		case m.Name == "" || m.Rule == "" || m.File == "" || m.From == "" || m.Run == "" || len(m.Pkgs) == 0:
			bad("every field is required")
			continue
		case m.From == m.To:
			bad("To equals From")
		case strings.Contains(m.To, "\n"):
			bad("To must be one line")
		}
		if _, err := regexp.Compile(m.Run); err != nil {
			bad("Run: %v", err)
		}
		src, err := os.ReadFile(filepath.Join(root, m.File))
		if err != nil {
			bad("%v", err)
			continue
		}
		if n := bytes.Count(src, []byte(m.From)); n != 1 {
			bad("%s holds its snippet %d times, want exactly once:\n\t%s", m.File, n, m.From)
		}
	}
	return errors.Join(errs...)
}

// copyTree copies the files of the repository at root, as they are in the working tree, into
// dir: tracked files and untracked ones that are not ignored. Tracked files deleted in the
// working tree are left out.
func copyTree(ctx context.Context, root, dir string) (int, error) {
	out, err := gitOutput(ctx, root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range strings.Split(out, "\x00") {
		if name == "" {
			continue
		}
		src, dst := filepath.Join(root, name), filepath.Join(dir, name)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return n, err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return n, err
			}
			err = os.Symlink(target, dst)
			if err != nil {
				return n, err
			}
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(src)
			if err != nil {
				return n, err
			}
			if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
				return n, err
			}
		default:
			continue // a submodule: nothing here builds or tests it
		}
		n++
	}
	return n, nil
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

const (
	statusKilled   = "killed"
	statusSurvived = "SURVIVED"
	statusBroken   = "BROKEN"
)

type result struct {
	status string
	detail string // the test that failed, or why the mutation does not count
	took   time.Duration
	output []byte
}

var (
	failedTest = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	failedPkg  = regexp.MustCompile(`(?m)^FAIL\s+(\S+)`)
)

// apply mutates m.File in the scratch tree, runs m's tests and restores the file.
func apply(ctx context.Context, scratch string, m mutation, timeout time.Duration) (r result, err error) {
	path := filepath.Join(scratch, m.File)
	orig, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return r, err
	}
	mutated := bytes.Replace(orig, []byte(m.From), []byte(m.To), 1)
	if err := os.WriteFile(path, mutated, fi.Mode().Perm()); err != nil {
		return r, err
	}
	defer func() {
		if rerr := os.WriteFile(path, orig, fi.Mode().Perm()); rerr != nil && err == nil {
			err = fmt.Errorf("restore %s: %w", m.File, rerr)
		}
	}()

	out, took, err := goTest(ctx, scratch, m.Run, m.Pkgs, timeout)
	r = result{took: took, output: out}
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		r.status, r.detail = statusSurvived, "no test failed: "+m.Rule
	case !errors.As(err, &exit):
		return r, err
	case bytes.Contains(r.output, []byte("[build failed]")) || bytes.Contains(r.output, []byte("[setup failed]")):
		r.status, r.detail = statusBroken, "the mutated tree does not compile"
	default:
		r.status = statusKilled
		if t := failedTest.FindSubmatch(r.output); t != nil {
			r.detail = "by " + string(t[1])
		} else if p := failedPkg.FindSubmatch(r.output); p != nil {
			r.detail = "by " + string(p[1]) + " (no single test named)"
		} else {
			r.detail = "go test failed"
		}
	}
	return r, nil
}

// goTest runs the tests matching run in pkgs, in dir, without the race detector or vet (`make
// test` has both; here only whether a test fails matters), stopping at the first failure.
func goTest(ctx context.Context, dir, run string, pkgs []string, timeout time.Duration) ([]byte, time.Duration, error) {
	// -trimpath keeps the scratch directory's name out of the build cache keys: with it, every
	// run reuses what earlier runs compiled although each has its own directory.
	args := append([]string{"test", "-count=1", "-failfast", "-trimpath", "-vet=off", "-timeout", timeout.String(), "-run", run}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	// The tests start redis-servers and stop them when interrupted; killing the go command
	// alone would leave its test binary running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	return out.Bytes(), time.Since(start), err
}

// baseline runs every selected mutation's tests once on the unmutated copy: a mutation counts
// as killed only if its tests pass without it.
func baseline(ctx context.Context, scratch string, ms []mutation, timeout time.Duration) (time.Duration, error) {
	var runs, pkgs []string
	seen := map[string]bool{}
	for _, m := range ms {
		runs = append(runs, "(?:"+m.Run+")")
		for _, p := range m.Pkgs {
			if !seen[p] {
				seen[p] = true
				pkgs = append(pkgs, p)
			}
		}
	}
	out, took, err := goTest(ctx, scratch, strings.Join(runs, "|"), pkgs, timeout)
	if err != nil && ctx.Err() == nil {
		return took, fmt.Errorf("the tests named in the table fail without any mutation, so no mutation can be said to be caught:\n%s", out)
	}
	return took, ctx.Err()
}
