package run

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// plan is what both isolations need, resolved from Options before any
// process starts.
type plan struct {
	o       Options
	id      string // unique per run
	root    *os.File
	user    execUser
	env     []string
	cwd     string
	caps    []string
	seccomp *specs.LinuxSeccomp // nil: no filter
	// seccompProg is seccomp compiled for the chroot isolation.
	seccompProg *seccompProgram
	masked      []string // masked paths
	readonly    []string // read-only paths
	hostname    string
	newNet      bool
	net         *userNetwork // a rootless private network (usernet.go); nil otherwise
	// consoleSize is kiln's terminal's window size, which the command's
	// pty has from the start (nil: no terminal, or no size).
	consoleSize *specs.Box
	mounts      []specs.Mount // generated /etc files first, then Options.Mounts
	created     []string      // placeholders created in the rootfs, to remove
	runFiles    []string      // files and dirs created in RunDir, to remove
	unlock      func()        // releases the run's lock (see lockRun)
}

// prepare validates o and resolves everything against the rootfs. On
// success the caller must call p.cleanup.
func prepare(o Options) (p *plan, err error) {
	if len(o.Args) == 0 || o.Args[0] == "" {
		return nil, fmt.Errorf("running in container %q: no command given", o.ContainerID)
	}
	if o.Rootfs == "" || o.RunDir == "" {
		return nil, errors.New("running a process: Rootfs and RunDir must be set")
	}
	var err2 error
	if o.Rootfs, err2 = filepath.Abs(o.Rootfs); err2 != nil {
		return nil, err2
	}
	if o.RunDir, err2 = filepath.Abs(o.RunDir); err2 != nil {
		return nil, err2
	}
	if err := o.Settings.check(o.Isolation, o.Network); err != nil {
		return nil, fmt.Errorf("running in container %q: %w", o.ContainerID, err)
	}
	if err := CheckEmulator(BinfmtDir, o.Architecture); err != nil {
		return nil, err
	}
	root, err := openRoot(o.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("opening root filesystem: %w", err)
	}
	p = &plan{o: o, root: root, id: uniqueID(o.ContainerID), newNet: o.Network != NetworkHost}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.cleanup())
			p = nil
		}
	}()
	if err := os.MkdirAll(o.RunDir, 0o700); err != nil {
		return p, fmt.Errorf("creating run directory: %w", err)
	}
	// The lock comes before any file in RunDir, so Cleanup never takes a
	// live run's files for a dead one's.
	if p.unlock, err = lockRun(filepath.Join(o.RunDir, stateDir), p.id); err != nil {
		return p, err
	}
	if p.user, err = resolveUser(root, o.User); err != nil {
		return p, err
	}
	if o.PrimaryGroupInGroups && !containsID(p.user.Groups, p.user.GID) {
		p.user.Groups = append([]uint32{p.user.GID}, p.user.Groups...)
	}
	if err := p.prepareVolumes(); err != nil {
		return p, err
	}
	p.hostname = o.Hostname
	if p.hostname == "" {
		p.hostname = shortID(o.ContainerID)
	}
	if o.Terminal {
		p.consoleSize = windowSize(o.Stdin)
	}
	p.env = defaultEnv(o.Env, p.user.Home, p.hostname)
	if p.cwd, err = prepareWorkdir(root, o.WorkingDir); err != nil {
		return p, err
	}
	if _, err := lookPathInRoot(root, o.Args[0], p.cwd, p.env); err != nil && !p.mountsMayProvide(o.Args[0]) {
		return p, err
	}
	if p.caps, err = resolveCaps(o.CapAdd, o.CapDrop); err != nil {
		return p, err
	}
	if err := p.prepareSecurity(); err != nil {
		return p, err
	}
	if userNetworkWanted(o.Network) {
		var note string
		if p.net, note, err = startUserNetwork(o.RunDir, p.id); err != nil {
			return p, err
		}
		if note != "" && o.Logger != nil {
			o.Logger.Warn(note)
		}
	}
	if err := p.writeEtcFiles(); err != nil {
		return p, err
	}
	return p, p.createMountPoints()
}

// cleanup removes the placeholders and RunDir files; it is idempotent.
func (p *plan) cleanup() error {
	p.net.close()
	p.net = nil
	var errs []error
	if p.root != nil {
		errs = append(errs, removeInRoot(p.root, p.created))
		p.created = nil
		p.root.Close()
		p.root = nil
	}
	for i := len(p.runFiles) - 1; i >= 0; i-- {
		if err := os.RemoveAll(p.runFiles[i]); err != nil {
			errs = append(errs, err)
		}
	}
	p.runFiles = nil
	if p.unlock != nil {
		p.unlock()
		p.unlock = nil
	}
	return errors.Join(errs...)
}

func uniqueID(id string) string {
	b := make([]byte, 4)
	rand.Read(b)
	if id == "" {
		id = "kiln"
	}
	return shortID(id) + "-" + hex.EncodeToString(b)
}

func shortID(id string) string {
	if id == "" {
		return "kiln"
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// defaultEnv adds PATH, HOME and HOSTNAME when env lacks them.
func defaultEnv(env []string, home, hostname string) []string {
	out := slices.Clone(env)
	has := func(k string) bool {
		return slices.ContainsFunc(out, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	}
	if !has("PATH") {
		out = append(out, defaultPath)
	}
	if !has("HOSTNAME") {
		out = append(out, "HOSTNAME="+hostname)
	}
	if !has("HOME") {
		out = append(out, "HOME="+home)
	}
	return out
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// prepareWorkdir creates dir inside root when missing; it is an error when
// dir exists and is not a directory.
func prepareWorkdir(root *os.File, dir string) (string, error) {
	cwd := path.Clean("/" + dir)
	f, err := openInRoot(root, cwd, unix.O_PATH)
	if err == nil {
		st, serr := f.Stat()
		f.Close()
		if serr != nil {
			return "", serr
		}
		if !st.IsDir() {
			return "", fmt.Errorf("working directory %s exists and is not a directory: choose another --workingdir: %w", cwd, ErrBadWorkingDir)
		}
		return cwd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return "", fmt.Errorf("working directory %s: %w: %w", cwd, ErrBadWorkingDir, err)
	}
	if _, err := ensureInRoot(root, cwd, false); err != nil {
		return "", fmt.Errorf("working directory %s: %w: %w", cwd, ErrBadWorkingDir, err)
	}
	return cwd, nil
}

// mountsMayProvide reports whether a user mount covers name or a PATH
// directory, so the command may appear only once mounts are made; the
// isolation then looks it up itself.
func (p *plan) mountsMayProvide(name string) bool {
	var dirs []string
	if strings.Contains(name, "/") {
		dirs = []string{path.Join(p.cwd, name)}
	} else {
		dirs = strings.Split(envValue(p.env, "PATH"), ":")
	}
	for _, m := range p.o.Mounts {
		dest := path.Clean("/" + m.Destination)
		for _, d := range dirs {
			d = path.Join(p.cwd, d)
			if d == dest || strings.HasPrefix(d, dest+"/") || dest == "/" {
				return true
			}
		}
	}
	return false
}

// lookPathInRoot finds name inside root the way execvp does, searching
// PATH from env when name has no slash, and returns its in-root path.
func lookPathInRoot(root *os.File, name, cwd string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !path.IsAbs(p) {
			p = path.Join(cwd, p)
		}
		return p, checkExecutable(root, name, p)
	}
	notExec := false
	for dir := range strings.SplitSeq(envValue(env, "PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		if !path.IsAbs(dir) {
			dir = path.Join(cwd, dir)
		}
		p := path.Join(dir, name)
		err := checkExecutable(root, name, p)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, ErrNotExecutable) {
			notExec = true
		}
	}
	if notExec {
		return "", fmt.Errorf("%q is in PATH but not executable: fix its mode: %w", name, ErrNotExecutable)
	}
	return "", fmt.Errorf("%q not found in the container's PATH (%s): install it in the image or give its full path: %w",
		name, envValue(env, "PATH"), ErrNotFound)
}

func checkExecutable(root *os.File, name, p string) error {
	f, err := openInRoot(root, p, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("command %q (%s) does not exist in the container: %w", name, p, ErrNotFound)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("command %q (%s) is not an executable file: %w", name, p, ErrNotExecutable)
	}
	return nil
}

// windowSize is the window size of the terminal r, or nil when it has
// none. The command's pty gets it before the command starts: set by the
// relay once the command runs, a `stty size` at the command's start could
// see 0 0 (it did under load).
func windowSize(r io.Reader) *specs.Box {
	f, ok := r.(*os.File)
	if !ok {
		return nil
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Row == 0 || ws.Col == 0 {
		return nil
	}
	return &specs.Box{Height: uint(ws.Row), Width: uint(ws.Col)}
}

// isTerminal reports whether r is a terminal device.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
