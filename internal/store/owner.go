package store

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// owner identifies this process across pid reuse: pid and start time.
var owner = ownerToken(os.Getpid())

func ownerToken(pid int) string {
	return fmt.Sprintf("%d:%s", pid, startTime(pid))
}

func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name may hold spaces; fields resume after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// alive reports whether the process that wrote token still runs.
func alive(token string) bool {
	pidStr, start, ok := strings.Cut(token, ":")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return false
	}
	st := startTime(pid)
	return st != "" && st == start
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// tmpPrefix names temp files so that recovery can tell whose they are.
func tmpPrefix() string { return fmt.Sprintf("%d-", os.Getpid()) }
