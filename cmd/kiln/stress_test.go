package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestManyWritersAtOnce: kiln processes building, tagging, removing and
// listing on one store at the same time never fail with "not known" or
// "locked", and the store checks out afterwards.
func TestManyWritersAtOnce(t *testing.T) {
	e := newEnv(t, "")
	e.busybox()
	const builders, rounds = 3, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	for b := range builders {
		dir := t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				df := fmt.Sprintf("FROM localhost/busybox\nRUN echo shared > /shared\nRUN echo %d-%d > /own\n", b, r)
				must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644))
				name := fmt.Sprintf("stress-%d-%d", b, r)
				if _, errOut, code := e.kiln("build", "-q", "-t", name, dir); code != 0 {
					fail("build %s: exit %d: %s", name, code, errOut)
					continue
				}
				if r > 0 {
					old := fmt.Sprintf("stress-%d-%d", b, r-1)
					if _, errOut, code := e.kiln("rmi", old); code != 0 {
						fail("rmi %s: exit %d: %s", old, code, errOut)
					}
				}
			}
		}()
	}
	stop := make(chan struct{})
	var lw sync.WaitGroup
	lw.Add(1)
	go func() {
		defer lw.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, verb := range [][]string{{"images", "-a"}, {"containers", "-a"}, {"image", "prune", "--force"}, {"images", "--format", "{{.ID}} {{.Size}}"}} {
				if _, errOut, code := e.kiln(verb...); code != 0 {
					fail("%v: exit %d: %s", verb, code, errOut)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	lw.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	got := e.mustKiln("images", "--format", "{{.Name}}")
	for b := range builders {
		if want := fmt.Sprintf("localhost/stress-%d-%d", b, rounds-1); !strings.Contains(got, want) {
			t.Errorf("images lack %s:\n%s", want, got)
		}
	}
	if out, errOut, code := e.kiln("storage", "check"); code != 0 {
		t.Errorf("storage check after the run: exit %d\n%s\n%s", code, out, errOut)
	}
}
