package dockerfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/image"
	"github.com/kiln-build/kiln/internal/store"
)

// knownDifference is an entry of testdata/differential/known.json: the
// problems of one case and one comparison ("buildah", "docker",
// "kiln-vs-docker", "kiln-vs-buildah") that are understood and written up
// in docs/build-differences.md; the case "*" stands for every case. A
// problem is known when it contains one of Match (all problems are, when
// Match is empty).
type knownDifference struct {
	Reason string   `json:"reason"`
	Match  []string `json:"match"`
}

// diffRow is one case's line of the summary table.
type diffRow struct {
	name  string
	cells map[string]string
}

// TestDifferential builds every conformance case with kiln, buildah and
// docker (BuildKit), checks each peer's image against the case's
// expect.json and compares kiln's image with each peer's: file list,
// content, modes, owners, symlinks and the config fields in
// comparedConfig. The same busybox base, exported from kiln's store as a
// docker-archive, is loaded into each peer. Opt-in: KILN_DIFFERENTIAL=1.
// KILN_DIFFERENTIAL_REPORT=FILE also writes the summary table there.
func TestDifferential(t *testing.T) {
	if os.Getenv("KILN_DIFFERENTIAL") != "1" {
		t.Skip("differential mode is opt-in: set KILN_DIFFERENTIAL=1 (scripts/differential.sh installs buildah and docker.io and runs it)")
	}
	ctx := context.Background()
	cases, err := filepath.Glob("testdata/cases/*")
	must(t, err)
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	if only := os.Getenv("KILN_DIFFERENTIAL_CASES"); only != "" {
		cases = filterCases(cases, strings.Split(only, ","))
	}
	known := loadKnown(t)
	st := testStore(t)
	work := t.TempDir()
	base := filepath.Join(work, "busybox.tar")
	img, err := st.LookupImage(ctx, "localhost/busybox:latest")
	must(t, err)
	must(t, exportImage(ctx, st, img, base, "localhost/busybox:latest"))
	start := time.Now()
	peers := []peer{newBuildahPeer(ctx, t, base), newDockerPeer(ctx, t, base)}
	t.Logf("peers ready in %v", time.Since(start).Round(time.Millisecond))
	var rows []diffRow
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rows = append(rows, runDiffCase(ctx, t, st, peers, dir, known))
		})
	}
	table := summaryTable(peers, rows)
	t.Logf("differential run took %v\n%s", time.Since(start).Round(time.Second), table)
	if f := os.Getenv("KILN_DIFFERENTIAL_REPORT"); f != "" {
		must(t, os.WriteFile(f, []byte(table), 0o644))
	}
}

func filterCases(cases, only []string) []string {
	var out []string
	for _, c := range cases {
		for _, o := range only {
			if filepath.Base(c) == o {
				out = append(out, c)
			}
		}
	}
	return out
}

func loadKnown(t *testing.T) map[string]knownDifference {
	t.Helper()
	known := map[string]knownDifference{}
	raw, err := os.ReadFile("testdata/differential/known.json")
	if os.IsNotExist(err) {
		return known
	}
	must(t, err)
	must(t, json.Unmarshal(raw, &known))
	return known
}

// loadDiffCase reads a case directory; secrets are written to files in a
// temporary directory for the builders to read.
func loadDiffCase(t *testing.T, dir string) diffCase {
	t.Helper()
	c := diffCase{name: filepath.Base(dir), dir: dir, secrets: map[string]string{}}
	raw, err := os.ReadFile(filepath.Join(dir, "expect.json"))
	must(t, err)
	must(t, json.Unmarshal(raw, &c.exp))
	abs, err := filepath.Abs(dir)
	must(t, err)
	c.dir = abs
	c.ctx = filepath.Join(abs, "context")
	if _, err := os.Stat(c.ctx); err != nil {
		c.ctx = t.TempDir()
	}
	secretDir := t.TempDir()
	for id, v := range c.exp.Secrets {
		p := filepath.Join(secretDir, id)
		must(t, os.WriteFile(p, []byte(v), 0o600))
		c.secrets[id] = p
	}
	return c
}

// runDiffCase builds one case with kiln and every peer and reports what
// each got wrong and how each differs from kiln.
func runDiffCase(ctx context.Context, t *testing.T, st *store.Store, peers []peer, dir string, known map[string]knownDifference) diffRow {
	c := loadDiffCase(t, dir)
	row := diffRow{name: c.name, cells: map[string]string{}}
	work := t.TempDir()
	kilnTree, kilnCell, kilnTook := kilnDiffBuild(ctx, t, st, c, work)
	row.cells["kiln"] = fmt.Sprintf("%s (%v)", kilnCell, kilnTook.Round(10*time.Millisecond))
	for _, p := range peers {
		res := peerBuild(ctx, t, p, c, work)
		probs, tree := peerProblems(c, p, res)
		cell := report(t, known, c.name, p.name(), probs)
		row.cells[p.name()] = fmt.Sprintf("%s (%v)", cell, res.took.Round(10*time.Millisecond))
		cmpName := "kiln-vs-" + p.name()
		switch {
		case c.exp.Error != "":
			row.cells[cmpName] = "both fail"
			if res.err == nil {
				row.cells[cmpName] = "peer builds"
			}
		case kilnTree == nil || tree == nil:
			row.cells[cmpName] = "n/a"
		default:
			row.cells[cmpName] = report(t, known, c.name, cmpName, diffTrees(kilnTree, tree, "kiln", p.name()))
		}
	}
	return row
}

// kilnDiffBuild builds c with kiln (its parent first) and reads the image
// back from a docker-archive export, like the peers' images.
func kilnDiffBuild(ctx context.Context, t *testing.T, st *store.Store, c diffCase, work string) (*imageTree, string, time.Duration) {
	start := time.Now()
	if c.exp.Parent {
		df, err := os.ReadFile(filepath.Join(c.dir, "parent", "Dockerfile"))
		must(t, err)
		if _, out, err := buildIn(t, st, c.ctx, string(df), func(o *Options) { o.Tags = []string{"localhost/parent:latest"} }); err != nil {
			t.Errorf("kiln: parent build: %v\n%s", err, out)
			return nil, "FAIL (parent)", time.Since(start)
		}
	}
	df, err := os.ReadFile(filepath.Join(c.dir, "Dockerfile"))
	must(t, err)
	ignore, err := ReadIgnore("", filepath.Join(c.dir, "Dockerfile"), c.ctx)
	must(t, err)
	img, out, err := buildIn(t, st, c.ctx, string(df), func(o *Options) {
		o.Args, o.Target, o.Ignore = c.exp.Args, c.exp.Target, ignore
		if c.exp.Format == "oci" {
			o.Commit.Format = image.FormatOCI
		}
		o.Run.Secrets = map[string]Secret{}
		for id, p := range c.secrets {
			o.Run.Secrets[id] = Secret{Src: p}
		}
	})
	took := time.Since(start)
	switch {
	case c.exp.Error != "" && err != nil:
		return nil, "fails", took
	case c.exp.Error != "":
		t.Errorf("kiln: built, want an error containing %q", c.exp.Error)
		return nil, "FAIL (builds)", took
	case err != nil:
		t.Errorf("kiln: build: %v\n%s", err, out)
		return nil, "FAIL", took
	}
	file := filepath.Join(work, "kiln.tar")
	must(t, exportImage(ctx, st, img, file, "localhost/diff-"+c.name+":latest"))
	tree, err := readDockerArchive(file)
	must(t, err)
	if probs := tree.checkExpect(c.exp); len(probs) > 0 {
		t.Errorf("kiln: %s", strings.Join(probs, "\n"))
		return tree, "FAIL", took
	}
	return tree, "ok", took
}

// peerBuild builds c's parent (if any) and c with p.
func peerBuild(ctx context.Context, t *testing.T, p peer, c diffCase, work string) peerResult {
	dir := filepath.Join(work, p.name())
	must(t, os.MkdirAll(dir, 0o755))
	if c.exp.Parent {
		r := p.build(ctx, t, c, filepath.Join(c.dir, "parent", "Dockerfile"), "localhost/parent:latest", dir)
		if r.err != nil {
			r.err = fmt.Errorf("parent: %w", r.err)
			return r
		}
	}
	return p.build(ctx, t, c, filepath.Join(c.dir, "Dockerfile"), "localhost/diff-"+c.name+":latest", dir)
}

// peerProblems checks a peer's result against the case: an error case
// must fail, any other must build an image that meets expect.json.
func peerProblems(c diffCase, p peer, res peerResult) ([]string, *imageTree) {
	if c.exp.Error != "" {
		if res.err == nil {
			return []string{"built, want a failure (" + c.exp.Error + ")"}, nil
		}
		return nil, nil
	}
	if res.err != nil {
		return []string{fmt.Sprintf("build failed: %v: %s", res.err, lastLines(res.out, 4))}, nil
	}
	tree, err := readDockerArchive(res.archive)
	if err != nil {
		return []string{"reading the image: " + err.Error()}, nil
	}
	stripBuilderLabel(tree)
	return tree.checkExpect(c.exp), tree
}

// stripBuilderLabel drops the io.buildah.version label buildah adds to
// every image it commits: it says who built the image, not what the
// Dockerfile asked for.
func stripBuilderLabel(tree *imageTree) {
	var labels map[string]string
	if json.Unmarshal(tree.Config["Labels"], &labels) != nil || labels == nil {
		return
	}
	delete(labels, "io.buildah.version")
	raw, err := json.Marshal(labels)
	if err == nil {
		tree.Config["Labels"] = raw
	}
}

// report logs problems that known.json explains and fails the test on the
// others; it returns the summary cell.
func report(t *testing.T, known map[string]knownDifference, name, what string, probs []string) string {
	t.Helper()
	if len(probs) == 0 {
		return "ok"
	}
	var unknown []string
	byReason := map[string][]string{}
	for _, p := range probs {
		if k, ok := knownFor(known, name, what, p); ok {
			byReason[k.Reason] = append(byReason[k.Reason], p)
			continue
		}
		unknown = append(unknown, p)
	}
	for _, reason := range sortedKeys(byReason) {
		t.Logf("%s, known (%s):\n  %s", what, reason, strings.Join(byReason[reason], "\n  "))
	}
	if len(unknown) > 0 {
		t.Errorf("%s:\n  %s", what, strings.Join(unknown, "\n  "))
		return fmt.Sprintf("DIFF %d", len(unknown))
	}
	return fmt.Sprintf("known %d", len(probs))
}

// knownFor finds the entry that explains problem p of case name: the
// case's own entry first, then the one for every case ("*").
func knownFor(known map[string]knownDifference, name, what, p string) (knownDifference, bool) {
	for _, key := range []string{name + "/" + what, "*/" + what} {
		if k, ok := known[key]; ok && matchesAny(p, k.Match) {
			return k, true
		}
	}
	return knownDifference{}, false
}

func matchesAny(s string, subs []string) bool {
	if len(subs) == 0 {
		return true
	}
	for _, m := range subs {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func summaryTable(peers []peer, rows []diffRow) string {
	cols := []string{"kiln"}
	for _, p := range peers {
		cols = append(cols, p.name())
	}
	for _, p := range peers {
		cols = append(cols, "kiln-vs-"+p.name())
	}
	var b strings.Builder
	b.WriteString("| case | " + strings.Join(cols, " | ") + " |\n|---" + strings.Repeat("|---", len(cols)) + "|\n")
	for _, r := range rows {
		b.WriteString("| " + r.name)
		for _, c := range cols {
			b.WriteString(" | " + r.cells[c])
		}
		b.WriteString(" |\n")
	}
	return b.String()
}
