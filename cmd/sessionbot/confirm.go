package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errAborted ends a command the operator did not confirm.
var errAborted = &exitError{code: exitFailed, err: errors.New("aborted, nothing deleted")}

// confirmCount asks the operator to type n, the number of sessions about to be affected, and
// reads one line of standard input. Anything but exactly that number (end of input included)
// aborts: a typed count proves the operator read the preview, which "y" does not.
func (c *cli) confirmCount(question string, n int64, abort error) error {
	fmt.Fprintf(c.stderr, "%s\nType %d to confirm (anything else aborts): ", question, n)
	line, err := c.stdin.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		fmt.Fprintln(c.stderr)
		return abort
	}
	if strings.TrimSpace(line) != strconv.FormatInt(n, 10) {
		return abort
	}
	return nil
}
