package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errAborted ends a command the operator did not confirm.
var errAborted = &exitError{code: exitFailed, err: errors.New("aborted, nothing deleted")}

// confirmCount asks the operator to type n, the number of sessions about to be affected, and
// reads one line of standard input. Anything but exactly that number (end of input and Ctrl-C
// included) returns abort: a typed count proves the operator read the preview, which "y" does
// not.
func (c *cli) confirmCount(ctx context.Context, question string, n int64, abort error) error {
	fmt.Fprintf(c.stderr, "%s\nType %d to confirm (anything else aborts): ", question, n)
	type answer struct {
		line string
		err  error
	}
	// The read cannot be interrupted, so it runs aside: Ctrl-C (ctx) must not hang at the prompt.
	ch := make(chan answer, 1)
	go func() {
		line, err := c.stdin.ReadString('\n')
		ch <- answer{line, err}
	}()
	var a answer
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.stderr)
		return abort
	case a = <-ch:
	}
	if a.err != nil && !(errors.Is(a.err, io.EOF) && a.line != "") {
		fmt.Fprintln(c.stderr)
		return abort
	}
	if strings.TrimSpace(a.line) != strconv.FormatInt(n, 10) {
		fmt.Fprintln(c.stderr) // the answer is not echoed when stdin is a pipe
		return abort
	}
	return nil
}
