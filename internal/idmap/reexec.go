package idmap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The environment of a kiln in its rootless namespace. The first three
// stay for the whole session (a kiln that kiln unshare's shell starts
// finds itself already inside); the last two are consumed by Init.
const (
	envConfigured = "_KILN_USERNS_CONFIGURED"
	envUID        = "_KILN_ROOTLESS_UID"
	envGID        = "_KILN_ROOTLESS_GID"
	envSync       = "_KILN_USERNS_SYNC"   // wait on fd 3 for the mappings, then exec again
	envParent     = "_KILN_USERNS_PARENT" // the pid that must stay our parent
)

var (
	// ErrNoNewuidmap means the user has subordinate ranges but newuidmap
	// or newgidmap, which alone may install them, is not installed.
	ErrNoNewuidmap = errors.New("newuidmap and newgidmap are needed for a rootless kiln")
	// ErrAborted is Init's error when Enter could not set the namespace
	// up: Enter reports why, and the child exits 125 without a word.
	ErrAborted = errors.New("the user namespace was not set up")
	// ErrMappingRefused means newuidmap or newgidmap refused the mapping.
	ErrMappingRefused = errors.New("the user namespace's id mapping was refused")
)

// Entered reports whether this process runs in the user namespace Enter
// made, directly or under kiln unshare: kiln is root there, for the
// unprivileged user RootlessIDs names.
func Entered() bool {
	return os.Getenv(envConfigured) != "" && InUserNamespace()
}

// Rootless reports whether kiln runs for an unprivileged user: its
// effective uid is not 0, or it runs in the namespace Enter made.
func Rootless() bool {
	return os.Geteuid() != 0 || Entered()
}

// RootlessIDs returns the uid and gid of the user kiln runs for, as the
// host knows them: in the namespace Enter made, the user's; elsewhere
// this process's own.
func RootlessIDs() (uid, gid int) {
	if Entered() {
		u, err1 := strconv.Atoi(os.Getenv(envUID))
		g, err2 := strconv.Atoi(os.Getenv(envGID))
		if err1 == nil && err2 == nil {
			return u, g
		}
	}
	return os.Getuid(), os.Getgid()
}

// Plan is the user namespace Enter makes for a user.
type Plan struct {
	UID, GID uint32
	// User is the user's name ("" when the passwd database lacks it).
	User       string
	UIDs, GIDs Mappings
	// Note, when set, says what the namespace cannot do (no subordinate
	// ranges: only the user's own ID is mapped).
	Note string
}

// PlanFor makes the plan for the user uid, gid: the ranges subuidFile and
// subgidFile give the user (by name or by number) after its own ID, as
// ForUser lays them out.
func PlanFor(uid, gid uint32, subuidFile, subgidFile string) (Plan, error) {
	p := Plan{UID: uid, GID: gid}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		p.User = u.Username
	}
	subuids, err := SubIDs(subuidFile, p.User, uid)
	if err != nil {
		return p, err
	}
	subgids, err := SubIDs(subgidFile, p.User, uid)
	if err != nil {
		return p, err
	}
	p.UIDs, p.GIDs = ForUser(uid, subuids), ForUser(gid, subgids)
	name := p.User
	if name == "" {
		name = strconv.FormatUint(uint64(uid), 10)
	}
	var missing []string
	if len(subuids) == 0 {
		missing = append(missing, subuidFile)
	}
	if len(subgids) == 0 {
		missing = append(missing, subgidFile)
	}
	if len(missing) > 0 {
		p.Note = fmt.Sprintf("%s has no subordinate IDs in %s: only ID 0 of an image maps (to the user's own); "+
			"layers with files of other owners cannot be pulled, RUN and USER as another user fail, and groups cannot be set. "+
			"Add ranges with: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 %s",
			name, strings.Join(missing, " and "), name)
	}
	return p, nil
}

// Enter runs args (args[0] is the program name; the program is this
// executable) with env in a new user and mount namespace with p's
// mappings, installed by newuidmap and newgidmap (or written directly
// when only the user's own ID is mapped), and waits for it; it forwards
// the usual termination signals and returns its exit status (128+n for a
// signal). The child must call Init first thing: it waits there until
// the mappings are in place and then executes itself again, so that it
// starts as root of the namespace with every capability in it. The
// caller is expected to exit with the status.
func Enter(ctx context.Context, p Plan, args, env []string) (int, error) {
	if len(args) == 0 {
		return 125, errors.New("entering the user namespace: no arguments")
	}
	tools := map[string]string{}
	for _, t := range []struct {
		name string
		m    Mappings
	}{{"newuidmap", p.UIDs}, {"newgidmap", p.GIDs}} {
		if len(t.m) < 2 {
			continue
		}
		path, err := exec.LookPath(t.name)
		if err != nil {
			return 125, fmt.Errorf("%w: %s is not installed (Debian and Ubuntu: apt-get install uidmap; Fedora: shadow-utils): %v", ErrNoNewuidmap, t.name, err)
		}
		tools[t.name] = path
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 125, err
	}
	defer w.Close()
	env = append(withoutRootlessEnv(env), envConfigured+"=1", envUID+"="+strconv.FormatUint(uint64(p.UID), 10), envGID+"="+strconv.FormatUint(uint64(p.GID), 10))
	// The child waits for the mappings and then starts kiln again, which
	// then is root of the namespace with every capability in it (an exec
	// by a uid the namespace does not map yet drops them). A shell waits
	// for less than a second start of kiln would; without one, kiln
	// itself waits in Init.
	path, cargs := "/proc/self/exe", args
	if exe, err := os.Executable(); err == nil && executable(waitShell) {
		path = waitShell
		cargs = append([]string{"sh", "-c", `read -r go <&3 || exit 125; ` + envParent + `=$PPID exec "$0" "$@" 3<&-`, exe}, args[1:]...)
	} else {
		env = append(env, envSync+"=1")
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   cargs,
		Env:    env,
		Stdin:  os.Stdin,
		Stdout: os.Stdout, Stderr: os.Stderr,
		ExtraFiles: []*os.File{r},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
			Pdeathsig:  syscall.SIGKILL,
		},
		WaitDelay: 5 * time.Second,
	}
	// The parent-death signal is tied to the thread that started the
	// child: keep this one until it is waited for.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		r.Close()
		return 125, fmt.Errorf("starting kiln in a new user namespace: %w", err)
	}
	r.Close()
	if err := writeMappings(cmd.Process.Pid, p, tools); err != nil {
		w.Close() // the child sees no go-ahead and exits
		_ = cmd.Wait()
		return 125, err
	}
	if _, err := w.Write([]byte("1\n")); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 125, fmt.Errorf("starting kiln in a new user namespace: %w", err)
	}
	w.Close()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				ctx = context.Background()
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 125, err
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// waitShell is the shell Enter's child waits in.
const waitShell = "/bin/sh"

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// withoutRootlessEnv drops the variables of an earlier namespace.
func withoutRootlessEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case envConfigured, envUID, envGID, envSync, envParent:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// writeMappings installs p's mappings for the process pid, the uid and
// gid mappings at once (each helper is a process start kiln waits for).
func writeMappings(pid int, p Plan, tools map[string]string) error {
	gidErr := make(chan error, 1)
	go func() { gidErr <- writeMapping(pid, "gid", p.GIDs, tools["newgidmap"]) }()
	err := writeMapping(pid, "uid", p.UIDs, tools["newuidmap"])
	return errors.Join(err, <-gidErr)
}

func writeMapping(pid int, kind string, m Mappings, tool string) error {
	if tool != "" {
		args := []string{strconv.Itoa(pid)}
		for _, l := range m {
			args = append(args, strconv.FormatUint(uint64(l.ContainerID), 10), strconv.FormatUint(uint64(l.HostID), 10), strconv.FormatUint(uint64(l.Size), 10))
		}
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s %s: %v: %s", ErrMappingRefused, tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	// One mapping of the user's own ID needs no helper; a gid mapping
	// written this way needs setgroups denied first.
	dir := fmt.Sprintf("/proc/%d/", pid)
	if kind == "gid" {
		if err := os.WriteFile(dir+"setgroups", []byte("deny"), 0); err != nil {
			return fmt.Errorf("%w: denying setgroups: %v", ErrMappingRefused, err)
		}
	}
	line := fmt.Sprintf("%d %d %d\n", m[0].ContainerID, m[0].HostID, m[0].Size)
	if err := os.WriteFile(dir+kind+"_map", []byte(line), 0); err != nil {
		return fmt.Errorf("%w: writing %s_map %q: %v", ErrMappingRefused, kind, strings.TrimSpace(line), err)
	}
	return nil
}

// Init is the child's half of Enter; main calls it before anything else.
// In a child Enter started it waits for the mappings and executes the
// program again (it does not return unless that fails); after that
// second start it ties its life to Enter's process. Elsewhere it does
// nothing. An error means this process must exit with status 125.
func Init() error {
	switch {
	case os.Getenv(envSync) != "":
		f := os.NewFile(3, "userns-sync")
		var b [2]byte
		n, _ := f.Read(b[:])
		f.Close()
		if n == 0 {
			return ErrAborted // Enter failed and says why

		}
		os.Unsetenv(envSync)
		os.Setenv(envParent, strconv.Itoa(os.Getppid()))
		err := unix.Exec("/proc/self/exe", os.Args, os.Environ())
		return fmt.Errorf("executing kiln again in its user namespace: %w", err)
	case os.Getenv(envParent) != "":
		want := os.Getenv(envParent)
		os.Unsetenv(envParent)
		// The second exec gained capabilities, which clears the
		// parent-death signal: set it again, then check the parent did
		// not go in between.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return fmt.Errorf("setting the parent-death signal: %w", err)
		}
		if strconv.Itoa(os.Getppid()) != want {
			return errors.New("kiln's parent process exited before it started")
		}
	}
	return nil
}
