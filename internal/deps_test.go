// Package internal_test enforces DESIGN.md's dependency rule: imports
// between kiln's packages only go down the table.
package internal_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/kiln-build/kiln/"

// allowed lists, for each package tree, the kiln packages it may import.
var allowed = map[string][]string{
	"internal/image":          {},
	"internal/idmap":          {},
	"internal/digestio":       {"internal/image"},
	"internal/signature":      {"internal/image"},
	"internal/policy":         {"internal/image", "internal/signature"},
	"internal/attest":         {"internal/image"},
	"internal/archive":        {"internal/image", "internal/idmap"},
	"internal/store/driver":   {"internal/archive", "internal/digestio", "internal/idmap", "internal/image", "internal/store/driver"},
	"internal/store":          {"internal/image", "internal/idmap", "internal/archive", "internal/digestio", "internal/store/driver"},
	"internal/transport":      {"internal/image", "internal/digestio", "internal/transport"},
	"internal/run":            {"internal/image", "internal/idmap"},
	"internal/container":      {"internal/store", "internal/run", "internal/archive", "internal/image", "internal/idmap"},
	"internal/images":         {"internal/store", "internal/transport", "internal/container", "internal/image", "internal/archive", "internal/policy", "internal/signature", "internal/attest"},
	"internal/dockerfile":     {"internal/container", "internal/image", "internal/store", "internal/run", "internal/archive", "internal/idmap"},
	"internal/store/backup":   {"internal/store", "internal/image", "internal/digestio"},
	"internal/storageconf":    {"internal/digestio", "internal/idmap"},
	"internal/storagesetup":   {"internal/storageconf", "internal/store/driver", "internal/digestio"},
	"internal/storagemigrate": {"internal/store", "internal/store/backup", "internal/storageconf", "internal/digestio"},
}

func tree(pkg string) string {
	best := ""
	for t := range allowed {
		if (pkg == t || strings.HasPrefix(pkg, t+"/")) && len(t) > len(best) {
			best = t
		}
	}
	return best
}

func TestDependencyRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		rel := strings.TrimPrefix(pkg, module)
		own := tree(rel)
		if own == "" {
			continue // cmd/kiln and tests may import anything
		}
		for _, d := range strings.Fields(deps) {
			if !strings.HasPrefix(d, module) {
				continue
			}
			dt := tree(strings.TrimPrefix(d, module))
			if dt == own || dt == "" {
				continue
			}
			ok := false
			for _, a := range allowed[own] {
				if a == dt {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s: %s may only import %v", rel, strings.TrimPrefix(d, module), own, allowed[own])
			}
		}
	}
}
