package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// sample is one timed run of a variant: its wall time and the largest
// resident set of any process it ran (wait4's ru_maxrss, which covers the
// child and the descendants it waited for).
type sample struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

// runTimed runs argv with env added to this process's environment and
// returns its wall time, peak memory and standard output.
func runTimed(ctx context.Context, env []string, argv []string) (sample, string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	s := sample{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.maxRSS = ru.Maxrss * 1024
		}
	}
	if err != nil {
		return s, out.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(errb.String()+out.String(), 600))
	}
	return s, out.String(), nil
}

// sh runs argv untimed and returns its trimmed standard output.
func sh(ctx context.Context, env []string, argv ...string) (string, error) {
	_, out, err := runTimed(ctx, env, argv)
	return strings.TrimSpace(out), err
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stats summarises samples.
type stats struct {
	median, min, max time.Duration
	maxRSS           int64
	n                int
}

func summarize(ss []sample) stats {
	if len(ss) == 0 {
		return stats{}
	}
	walls := make([]time.Duration, len(ss))
	var st stats
	for i, s := range ss {
		walls[i] = s.wall
		st.maxRSS = max(st.maxRSS, s.maxRSS)
	}
	slices.Sort(walls)
	st.n = len(walls)
	st.min, st.max = walls[0], walls[len(walls)-1]
	if len(walls)%2 == 1 {
		st.median = walls[len(walls)/2]
	} else {
		st.median = (walls[len(walls)/2-1] + walls[len(walls)/2]) / 2
	}
	return st
}

// fmtDur prints a duration with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtMiB(b int64) string {
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}
