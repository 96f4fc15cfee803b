package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// storeBytes is what a store holds on disk besides its metadata: blobs,
// layer files, tar-split records, temp files.
func diskBytes(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(filepath.Join(root, "root"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), "kiln.db") || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return nil
	})
	must(t, err)
	return n
}

// randomImage pushes an image of three 12 MiB random layers (random so
// that compression cannot shrink them) to reg as name, from a store of
// its own.
func randomImage(t *testing.T, reg, name string) {
	t.Helper()
	src := newEnv(t, "")
	c := src.mustKiln("from", "scratch")
	for i := range 3 {
		mp := src.mustKiln("mount", c)
		b := make([]byte, 12<<20)
		rand.Read(b)
		must(t, os.WriteFile(filepath.Join(mp, "data"+string(rune('a'+i))), b, 0o644))
		src.mustKiln("commit", "-q", c, "localhost/random")
	}
	src.mustKiln("push", "-q", "--tls-verify=false", "localhost/random", "docker://"+reg+"/"+name)
}

// slowProxy passes requests to host at about rate bytes a second, in all:
// responses read at once share the rate (a pull fetches its layers in
// parallel, and with a rate each the 36 MiB took 1.5 s, not 4.5 s, so that
// a pull meant to be killed could finish first).
func slowProxy(t *testing.T, host string, rate int) string {
	t.Helper()
	lim := &rateLimit{rate: rate}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: host})
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{&slowReader{r: resp.Body, lim: lim}, resp.Body}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// rateLimit spaces reads so that they add up to rate bytes a second.
type rateLimit struct {
	mu   sync.Mutex
	next time.Time
	rate int
}

// wait blocks until n more bytes fit in the rate.
func (l *rateLimit) wait(n int) {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(n) * time.Second / time.Duration(l.rate))
	until := l.next
	l.mu.Unlock()
	time.Sleep(time.Until(until))
}

type slowReader struct {
	r   io.Reader
	lim *rateLimit
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := s.r.Read(p)
	s.lim.wait(n)
	return n, err
}

// TestFailedPullsGiveBackSpace: a pull that cannot fit is refused before
// its first byte, and pulls killed with SIGKILL at any moment leave
// nothing once the next kiln command has opened the store: its size is
// what it was before, within the metadata.
func TestFailedPullsGiveBackSpace(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	reg := plainRegistry(t)
	randomImage(t, reg, "big/random")
	slow := slowProxy(t, reg, 8<<20) // the 36 MiB image takes 4.5 s

	t.Run("refused up front", func(t *testing.T) {
		dir := t.TempDir()
		must(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=48m"))
		t.Cleanup(func() { exec.Command("umount", "-R", "-l", dir).Run() })
		e := &env{t: t, root: dir}
		e.mustKiln("--storage-driver", "vfs", "--storage-opt", "min_free_space=16M", "images")
		before := diskBytes(t, dir)
		_, errOut, code := e.kiln("--storage-opt", "min_free_space=16M", "pull", "-q", "--tls-verify=false", reg+"/big/random")
		if code != 125 || !strings.Contains(errOut, "needs about") || !strings.Contains(errOut, "nothing was written") {
			t.Fatalf("pulling 36 MiB into 32 MiB: exit %d, %q", code, errOut)
		}
		if after := diskBytes(t, dir); after != before {
			t.Errorf("the refused pull left %d bytes", after-before)
		}
	})

	t.Run("killed", func(t *testing.T) {
		e := newEnv(t, "")
		e.mustKiln("images")
		before := diskBytes(t, e.root)
		for i := range 8 {
			cmd := exec.Command(kilnBin, e.args("pull", "-q", "--tls-verify=false", slow+"/big/random")...)
			must(t, cmd.Start())
			time.Sleep(time.Duration(200+250*i) * time.Millisecond)
			cmd.Process.Kill()
			cmd.Wait()
		}
		left := diskBytes(t, e.root)
		if got := e.mustKiln("images", "-q"); got != "" {
			t.Fatalf("a pull that should have been killed finished: %s", got)
		}
		after := diskBytes(t, e.root)
		t.Logf("8 killed pulls left %d bytes; after the next command %d", left-before, after-before)
		if after != before {
			t.Errorf("killed pulls left %d bytes after the next command", after-before)
		}
		if out := e.mustKiln("storage", "check"); !strings.Contains(out, "0 problems") {
			t.Errorf("check after killed pulls: %s", out)
		}
		e.mustKiln("pull", "-q", "--tls-verify=false", reg+"/big/random")
	})
}

// pipeClosed runs kiln with stdout and stderr on a pipe nobody reads.
func (e *env) pipeClosed(a ...string) int {
	e.t.Helper()
	r, w, err := os.Pipe()
	must(e.t, err)
	r.Close()
	cmd := exec.Command(kilnBin, e.args(a...)...)
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.t.Fatalf("kiln %v died of %v", a, ws.Signal())
		}
		return ee.ExitCode()
	}
	must(e.t, err)
	return 0
}

// TestBrokenPipe: kiln whose output goes nowhere (a log collector gone,
// `| head -1`) finishes its store work and exits non-zero; it is never
// killed half-way through a write.
func TestBrokenPipe(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	e := newEnv(t, "")
	base := e.foreignBusybox()
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T)
	}{
		{"pull", []string{"pull", "--tls-verify=false", base.Ref}, nil},
		{"commit", nil, nil},
		{"build", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			args, want := tc.args, ""
			switch tc.name {
			case "commit":
				c := e.mustKiln("from", "localhost/busybox")
				mp := e.mustKiln("mount", c)
				must(t, os.WriteFile(filepath.Join(mp, "f"), []byte("f"), 0o644))
				args, want = []string{"commit", c, "localhost/piped-commit"}, "localhost/piped-commit"
			case "build":
				dir := t.TempDir()
				must(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM localhost/busybox\nRUN echo built > /b\nCOPY Dockerfile /\n"), 0o644))
				args, want = []string{"build", "-t", "localhost/piped-build", dir}, "localhost/piped-build"
			}
			if code := e.pipeClosed(args...); code == 0 {
				t.Errorf("kiln %s with its output closed exited 0", tc.name)
			}
			if want != "" {
				e.mustKiln("inspect", "--type", "image", want)
			}
			if out := e.mustKiln("storage", "check"); !strings.Contains(out, "0 problems") {
				t.Errorf("check after %s with a broken pipe: %s", tc.name, out)
			}
		})
	}
}

// TestLivenessAcrossPIDNamespaces: a kiln in a PID namespace of its own
// (as in a build container) and a kiln on the host share one store. The
// host's commands, which clean up after dead processes, never take the
// other's live work for leftovers; once it is killed, they do clean up.
func TestLivenessAcrossPIDNamespaces(t *testing.T) {
	requiresRoot(t)
	t.Parallel()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	e := newEnv(t, "")
	e.foreignBusybox()
	fill := func(c string) {
		mp := e.mustKiln("mount", c)
		b := make([]byte, 8<<20)
		for i := range 48 {
			rand.Read(b[:4096])
			must(t, os.WriteFile(filepath.Join(mp, fmt.Sprintf("d%02d", i)), b, 0o644))
		}
		e.mustKiln("unmount", c)
	}
	inNamespace := func(a ...string) *exec.Cmd {
		cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--kill-child", kilnBin}, e.args(a...)...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	busy := func(until <-chan struct{}) {
		for {
			select {
			case <-until:
				return
			default:
			}
			e.mustKiln("images")
			e.kiln("storage", "check")
			e.mustKiln("containers")
		}
	}

	c := e.mustKiln("from", "localhost/busybox")
	fill(c)
	cmd := inNamespace("commit", "-q", c, "localhost/from-namespace")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	busy(done)
	if werr != nil {
		t.Fatalf("the commit in the other PID namespace, while the host listed and checked: %v: %s", werr, out)
	}
	if got := e.mustKiln("storage", "check"); !strings.Contains(got, "0 problems") {
		t.Errorf("check after the commit: %s", got)
	}

	c2 := e.mustKiln("from", "localhost/busybox")
	fill(c2)
	cmd = inNamespace("commit", "-q", c2, "localhost/killed")
	must(t, cmd.Start())
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	// unshare is gone; its child, killed too, is gone once its group is.
	for syscall.Kill(-cmd.Process.Pid, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.mustKiln("storage", "check"); !strings.Contains(got, "0 problems") {
		t.Errorf("check after the killed commit: %s", got)
	}
	if left, _ := os.ReadDir(filepath.Join(e.root, "root", "tmp")); len(left) != 0 {
		t.Errorf("%d temp files left by the killed commit", len(left))
	}
	procs, _ := os.ReadDir(filepath.Join(e.root, "root", "procs"))
	if len(procs) != 0 {
		t.Errorf("lock files of dead processes left: %v", procs)
	}
	// The container lost nothing: its writes are still there to commit.
	e.mustKiln("commit", "-q", c2, "localhost/after-kill")
	r := e.mustKiln("from", "localhost/after-kill")
	if got := e.mustKiln("run", r, "--", "sh", "-c", "ls / | grep -c '^d[0-9][0-9]$'"); got != "48" {
		t.Errorf("files of the container after the killed commit: %s", got)
	}
}
