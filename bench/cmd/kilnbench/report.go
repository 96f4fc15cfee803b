package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// machine describes where the figures were taken.
type machine struct {
	cpu, kernel, fs string
	cores           int
	memGiB          float64
	loadStart       string
	loadEnd         string
	date            time.Time
	versions        [][2]string
}

func describeMachine(ctx context.Context, b *bench) machine {
	m := machine{cores: runtime.NumCPU(), date: time.Now().UTC()}
	if s, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(s), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if s, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(s), "\n", 2)[0], "MemTotal:"), "%f", &kb)
		m.memGiB = kb / (1 << 20)
	}
	m.kernel, _ = sh(ctx, nil, "uname", "-r")
	m.fs, _ = sh(ctx, nil, "sh", "-c", `df -T "$1" | awk 'NR==2 {print $2 " (" $1 ")"}'`, "sh", b.work)
	m.loadStart = loadavg()
	first := func(argv ...string) string {
		out, err := sh(ctx, nil, argv...)
		if err != nil {
			return "not available"
		}
		return strings.SplitN(out, "\n", 2)[0]
	}
	kv, _ := sh(ctx, nil, b.kilnBin, "version")
	kilnVersion := "kiln"
	for line := range strings.SplitSeq(kv, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (strings.TrimSpace(k) == "Version" || strings.TrimSpace(k) == "Git Commit") && strings.TrimSpace(v) != "" {
			kilnVersion += " " + strings.TrimSpace(v)
		}
	}
	if c := os.Getenv("KILN_COMMIT"); c != "" {
		kilnVersion += " (commit " + c + ")"
	}
	m.versions = [][2]string{
		{"kiln", kilnVersion},
		{"buildah", first("buildah", "--version")},
		{"docker (client, server)", first(b.docker("version", "--format", "{{.Client.Version}}, {{.Server.Version}}")...)},
		{"skopeo", first("skopeo", "--version")},
		{"runc", first("runc", "--version")},
		{"docker-registry", first("docker-registry", "--version")},
		{"go", runtime.Version()},
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// printTable writes one workload's figures as a Markdown table.
func printTable(out io.Writer, w *workload) {
	fmt.Fprintf(out, "### %s\n\n%s", w.name, w.what)
	if w.skip != "" {
		fmt.Fprintf(out, ".\n\n**skipped: %s**\n\n", w.skip)
		return
	}
	fmt.Fprintf(out, "; %d runs each, alternating.\n\n", w.runs)
	fmt.Fprintln(out, "| variant | median | min–max | peak memory | kiln/this |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|")
	for _, v := range w.variants {
		if v.err != nil && len(v.samples) == 0 {
			fmt.Fprintf(out, "| %s | failed: %s | | | |\n", v.name, oneLine(v.err.Error()))
			continue
		}
		st := summarize(v.samples)
		r := ""
		if v.vs != "" {
			if x := ratio(w.variant(v.vs), v); x > 0 {
				r = fmt.Sprintf("%.2f× (%s)", x, v.vs)
			}
		}
		mem := fmtMiB(st.maxRSS)
		if v.note != "" {
			mem += " (" + v.note + ")"
		}
		fmt.Fprintf(out, "| %s | %s | %s–%s | %s | %s |\n", v.name, fmtDur(st.median), fmtDur(st.min), fmtDur(st.max), mem, r)
	}
	fmt.Fprintln(out)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// goalRow is one checked goal.
type goalRow struct {
	workload, desc, measured, verdict string
}

func checkGoals(ws []*workload) []goalRow {
	var rows []goalRow
	for _, w := range ws {
		for _, g := range w.goals {
			row := goalRow{workload: w.name, desc: g.desc}
			if w.skip != "" {
				row.measured, row.verdict = "—", "skipped: "+w.skip
				rows = append(rows, row)
				continue
			}
			ok, measured, applicable := g.check(w)
			row.measured = measured
			switch {
			case !applicable:
				row.verdict = "not measured"
			case ok:
				row.verdict = "met"
			default:
				row.verdict = "**missed**"
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// writeReport writes the whole Markdown report.
func writeReport(out io.Writer, m machine, ws []*workload, n int, notes string) {
	fmt.Fprintf(out, "# Benchmarks\n\nMade by `bench/run` (kiln side by side with buildah, docker and skopeo, alternating, in one run). Regenerate with `bench/run`; the section \"What dominates\" comes from `bench/analysis.md`.\n\n")
	fmt.Fprintf(out, "## Machine\n\n- date: %s\n- CPU: %s, %d cores; memory %.0f GiB; kernel %s\n- work directory filesystem: %s\n- load average at start / end: %s / %s (the machine is shared with other engineers compiling and testing: figures are noisy)\n- runs per workload: %d for the heavy ones (more for the cheap ones, see each table)\n\n",
		m.date.Format("2006-01-02 15:04 UTC"), m.cpu, m.cores, m.memGiB, m.kernel, m.fs, m.loadStart, m.loadEnd, n)
	fmt.Fprintln(out, "| tool | version |\n|---|---|")
	for _, v := range m.versions {
		fmt.Fprintf(out, "| %s | %s |\n", v[0], v[1])
	}
	fmt.Fprintln(out, "\n## Goals (issue 5)")
	fmt.Fprintln(out, "\n| workload | goal | measured | verdict |\n|---|---|---:|---|")
	for _, r := range checkGoals(ws) {
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", r.workload, r.desc, r.measured, r.verdict)
	}
	fmt.Fprintln(out, "\n## Figures\n\nWall time per run (median, min–max), the peak resident memory of the command and its waited-for children (wait4's ru_maxrss, largest over the runs), and kiln's median over this variant's.")
	fmt.Fprintln(out)
	for _, w := range ws {
		printTable(out, w)
	}
	if notes != "" {
		fmt.Fprintf(out, "## What dominates\n\n%s\n", strings.TrimSpace(notes))
	}
}
