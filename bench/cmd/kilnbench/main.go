// Command kilnbench runs kiln side by side with buildah, docker and skopeo
// on the workloads of issue 5 and writes the figures as Markdown. bench/run
// installs the peers, builds kiln and this harness, and runs it; nothing
// else imports this package.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
)

func main() {
	var (
		kilnBin  = flag.String("kiln", "", "kiln binary to measure")
		work     = flag.String("work", "/var/tmp/kilnbench", "scratch directory (stores, data, daemons); kept between runs to reuse data and the 1,000 images")
		n        = flag.Int("n", 3, "runs per workload for the heavy (1 GiB, build) workloads")
		nFast    = flag.Int("n-fast", 15, "runs per workload for the cheap ones (cycle, run, images)")
		out      = flag.String("out", "docs/benchmarks.md", "Markdown report to write (\"\" for none)")
		notes    = flag.String("notes", "bench/analysis.md", "Markdown appended to the report as \"What dominates\"")
		only     = flag.String("only", "", "run only the workloads whose name matches this regular expression")
		debian   = flag.Bool("debian", false, "also make a debootstrap --variant=minbase Debian base image (needs the Debian mirror) and run the cycle on it")
		noDocker = flag.Bool("no-docker", false, "do not start dockerd (skips docker-daemon: and docker build)")
	)
	flag.Parse()
	lg := log.New(os.Stderr, "kilnbench: ", log.Ltime)
	if *kilnBin == "" {
		lg.Fatal("-kiln is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	abs, _ := filepath.Abs(*kilnBin)
	b := &bench{work: *work, kilnBin: abs, lg: lg, dockerBin: dockerClient()}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		lg.Fatal(err)
	}
	// kiln reads an empty storage.conf of the bench's own, never
	// /etc/kiln/storage.conf: the host's settings change no result.
	conf := filepath.Join(b.work, "kiln-storage.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		lg.Fatal(err)
	}
	os.Setenv("KILN_STORAGE_CONF", conf)
	defer b.stop(context.WithoutCancel(ctx))
	ws, m, err := b.runAll(ctx, *n, *nFast, *only, *debian, *noDocker)
	if err != nil {
		lg.Print(err)
	}
	var report bytes.Buffer
	analysis, _ := os.ReadFile(*notes)
	writeReport(&report, m, ws, *n, string(analysis))
	for _, w := range ws {
		printTable(os.Stdout, w)
	}
	fmt.Println("Goals:")
	for _, r := range checkGoals(ws) {
		fmt.Printf("  %-32s %-44s %-12s %s\n", r.workload, r.desc, r.measured, strings.Trim(r.verdict, "*"))
	}
	if *out != "" && len(ws) > 0 {
		if err := os.WriteFile(*out, report.Bytes(), 0o644); err != nil {
			lg.Fatal(err)
		}
		lg.Printf("wrote %s", *out)
	}
	if err != nil {
		b.stop(context.WithoutCancel(ctx)) // os.Exit runs no deferred call
		os.Exit(1)
	}
}

// dockerClient prefers the client Debian's docker.io ships, which matches
// its dockerd and does BuildKit builds without the buildx plugin.
func dockerClient() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	if p, err := exec.LookPath("docker"); err == nil {
		return p
	}
	return "docker"
}

// runAll prepares the bases and data and runs the selected workloads.
func (b *bench) runAll(ctx context.Context, n, nFast int, only string, debian, noDocker bool) ([]*workload, machine, error) {
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, machine{}, err
	}
	if !noDocker {
		if err := b.startDockerd(ctx); err != nil {
			b.lg.Printf("docker workloads will be skipped: %v", err)
			b.dockerSock = ""
		}
	}
	m := describeMachine(ctx, b)
	b.lg.Print("making the base images and the data")
	if err := b.makeBusybox(ctx); err != nil {
		return nil, m, fmt.Errorf("making the busybox base: %w", err)
	}
	if err := makeData(b.path("data", "1g"), bigFiles, bigFileSize); err != nil {
		return nil, m, err
	}
	ws := []*workload{
		b.commitWorkload(n), b.cycleWorkload(nFast, "localhost/busybox"), b.runWorkload(nFast),
		b.pullWorkload(n), b.pushWorkload(n), b.layeredPushWorkload(n), b.daemonWorkload(n), b.imagesWorkload(nFast),
	}
	if debian {
		mirror, suite := aptMirror()
		if err := b.makeDebian(ctx, mirror, suite); err != nil {
			b.lg.Printf("no Debian base: %v", err)
		} else {
			ws = append(ws, b.cycleWorkload(nFast, "localhost/debian"), b.pullSmallFilesWorkload(n))
		}
	}
	_, _, berr := runTimed(ctx, nil, []string{b.kilnBin, "build", "--help"})
	for _, bc := range b.buildCases() {
		ws = append(ws, b.buildWorkload(bc, n, berr == nil))
	}
	ws = append(ws, b.multiPlatformWorkload(n))
	var selected []*workload
	for _, w := range ws {
		if re.MatchString(w.name) {
			selected = append(selected, w)
		}
	}
	for _, w := range selected {
		if ctx.Err() != nil {
			break
		}
		w.execute(ctx, b.lg)
	}
	m.loadEnd = loadavg()
	return selected, m, ctx.Err()
}
