//go:build !linux

package redistest

import "syscall"

// sysProcAttr has no parent-death signal outside Linux: Stop (or t.Cleanup) must run.
func sysProcAttr() *syscall.SysProcAttr { return nil }
