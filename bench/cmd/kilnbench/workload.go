package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// variant is one tool's way of doing a workload.
type variant struct {
	name string
	kiln bool   // kiln's own variant: its memory counts toward the goal
	vs   string // for a peer: the kiln variant it is compared with
	note string // shown beside the figures (e.g. "client only")
	env  []string
	// once runs before the first iteration and done after the last,
	// untimed; prep and post run around every timed iteration, untimed.
	once, done func(ctx context.Context) error
	prep, post func(ctx context.Context, i int) error
	// steps returns the commands of iteration i, timed together.
	steps func(i int) [][]string

	samples []sample
	err     error
}

// goal is one of issue 5's goals, checked on a finished workload.
type goal struct {
	desc  string
	check func(w *workload) (ok bool, measured string, applicable bool)
}

// workload is one row group of the report.
type workload struct {
	name, what string
	runs       int
	variants   []*variant
	goals      []goal
	skip       string // why it did not run
}

func (w *workload) variant(name string) *variant {
	for _, v := range w.variants {
		if v.name == name {
			return v
		}
	}
	return nil
}

// execute runs every variant's iterations, alternating the variants in
// each round so drift on a shared machine hits all of them alike.
func (w *workload) execute(ctx context.Context, lg *log.Logger) {
	if w.skip != "" {
		lg.Printf("%s: skipped: %s", w.name, w.skip)
		return
	}
	lg.Printf("%s: setting up", w.name)
	for _, v := range w.variants {
		if v.once != nil {
			if err := v.once(ctx); err != nil {
				v.err = fmt.Errorf("setup: %w", err)
				lg.Printf("%s / %s: %v", w.name, v.name, v.err)
			}
		}
	}
	for i := range w.runs {
		for _, v := range w.variants {
			if v.err != nil || ctx.Err() != nil {
				continue
			}
			s, err := v.iterate(ctx, i)
			if err != nil {
				v.err = err
				lg.Printf("%s / %s: %v", w.name, v.name, err)
				continue
			}
			v.samples = append(v.samples, s)
			lg.Printf("%s / %s #%d: %s, %s", w.name, v.name, i+1, fmtDur(s.wall), fmtMiB(s.maxRSS))
		}
	}
	for _, v := range w.variants {
		if v.done != nil {
			if err := v.done(ctx); err != nil {
				lg.Printf("%s / %s: cleanup: %v", w.name, v.name, err)
			}
		}
	}
}

// iterate runs one timed iteration with its untimed prep and post.
func (v *variant) iterate(ctx context.Context, i int) (sample, error) {
	if v.prep != nil {
		if err := v.prep(ctx, i); err != nil {
			return sample{}, fmt.Errorf("prep: %w", err)
		}
	}
	// Every timed run starts with nothing dirty in the page cache: a
	// tool must not pay, in its own fsyncs, for the writeback of what the
	// tool before it wrote (20,000 files written by a peer made the next
	// kiln COPY, which fsyncs its blob, 0.3–0.5 s slower).
	syscall.Sync()
	// Nor for what a daemon still does after its command returned
	// (dockerd removing the snapshot a rebuild replaced: 20,000 unlinks
	// whose journal commits a kiln fsync then waits behind).
	waitDiskIdle(ctx, 300*time.Millisecond, 15*time.Second)
	var total sample
	for _, argv := range v.steps(i) {
		s, _, err := runTimed(ctx, v.env, argv)
		if err != nil {
			return sample{}, err
		}
		total.wall += s.wall
		total.maxRSS = max(total.maxRSS, s.maxRSS)
	}
	if v.post != nil {
		if err := v.post(ctx, i); err != nil {
			return sample{}, fmt.Errorf("cleanup: %w", err)
		}
	}
	return total, nil
}

// ratio is kiln's median over the peer's, or 0 when one is missing.
func ratio(kiln, peer *variant) float64 {
	if kiln == nil || peer == nil || len(kiln.samples) == 0 || len(peer.samples) == 0 {
		return 0
	}
	p := summarize(peer.samples).median
	if p == 0 {
		return 0
	}
	return float64(summarize(kiln.samples).median) / float64(p)
}

// ratioGoal checks kiln/peer ≤ limit.
func ratioGoal(kilnName, peerName string, limit float64) goal {
	return goal{
		desc: fmt.Sprintf("%s ≤ %.2g× %s", kilnName, limit, peerName),
		check: func(w *workload) (bool, string, bool) {
			r := ratio(w.variant(kilnName), w.variant(peerName))
			if r == 0 {
				return false, "not measured", false
			}
			return r <= limit, fmt.Sprintf("%.2f×", r), true
		},
	}
}

// wallGoal checks kiln's median wall time < limit.
func wallGoal(kilnName string, limit time.Duration) goal {
	return goal{
		desc: fmt.Sprintf("%s under %s", kilnName, fmtDur(limit)),
		check: func(w *workload) (bool, string, bool) {
			v := w.variant(kilnName)
			if v == nil || len(v.samples) == 0 {
				return false, "not measured", false
			}
			m := summarize(v.samples).median
			return m < limit, fmtDur(m), true
		},
	}
}

// memoryGoal checks every kiln variant's peak memory < limit.
func memoryGoal(limit int64) goal {
	return goal{
		desc: fmt.Sprintf("kiln's peak memory under %s", fmtMiB(limit)),
		check: func(w *workload) (bool, string, bool) {
			var peak int64
			seen := false
			for _, v := range w.variants {
				if v.kiln && len(v.samples) > 0 {
					seen = true
					peak = max(peak, summarize(v.samples).maxRSS)
				}
			}
			if !seen {
				return false, "not measured", false
			}
			return peak < limit, fmtMiB(peak), true
		},
	}
}

// waitDiskIdle waits until no disk has written a sector for quiet (per
// /proc/diskstats), or until limit has passed.
func waitDiskIdle(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, still := diskWrites(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		if n := diskWrites(); n != last {
			last, still = n, time.Now()
			continue
		}
		if time.Since(still) >= quiet {
			return
		}
	}
}

// diskWrites is the sum of sectors written and writes in progress over
// the machine's whole disks.
func diskWrites() uint64 {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0
	}
	var sum uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// major minor name reads ... writes merged sectors ms in-progress
		if len(f) < 12 || strings.HasPrefix(f[2], "loop") || strings.HasPrefix(f[2], "ram") {
			continue
		}
		for _, i := range []int{9, 11} {
			n, _ := strconv.ParseUint(f[i], 10, 64)
			sum += n
		}
	}
	return sum
}
