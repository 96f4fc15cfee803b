package dockerfile

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-build/kiln/internal/archive"
	"github.com/kiln-build/kiln/internal/container"
)

// Source is a build context made ready to read: a local directory used
// in place, or a temporary one holding an unpacked tarball, a stdin
// stream or a git checkout.
type Source struct {
	// Dir is the context directory.
	Dir string
	// Dockerfile is set when stdin or a URL held a Dockerfile rather
	// than a tar.
	Dockerfile []byte
	// DockerfilePath is set when the context named a local Dockerfile:
	// the context is its directory.
	DockerfilePath string
	tmp            string
}

// Close removes what OpenSource made.
func (s *Source) Close() error {
	if s.tmp == "" {
		return nil
	}
	return os.RemoveAll(s.tmp)
}

// OpenSource prepares the context spec names: "-" (a tar stream, or a
// Dockerfile alone, on stdin), a directory, a tarball file, a
// Dockerfile (its directory is the context), an http(s) URL of a
// tarball or of a Dockerfile, or a git repository (URL, or any path with
// "#ref[:subdir]"). tmpDir holds temporary copies.
func OpenSource(ctx context.Context, spec string, stdin io.Reader, tmpDir string) (*Source, error) {
	switch {
	case spec == "-":
		return sourceFromStream(ctx, stdin, tmpDir)
	case isGitSource(spec):
		return gitSource(ctx, spec, tmpDir)
	case container.IsURL(spec):
		tmp, err := os.MkdirTemp(tmpDir, "context-")
		if err != nil {
			return nil, err
		}
		file, err := container.Download(ctx, spec, tmp, "")
		if err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		if !isArchive(file) {
			return dockerfileSource(file, tmp)
		}
		return unpackSource(ctx, file, tmp)
	}
	fi, err := os.Stat(spec)
	if err != nil {
		return nil, fmt.Errorf("build context %s: %w", spec, err)
	}
	if fi.IsDir() {
		return &Source{Dir: spec}, nil
	}
	if !isArchive(spec) {
		return &Source{Dir: filepath.Dir(spec), DockerfilePath: spec}, nil
	}
	tmp, err := os.MkdirTemp(tmpDir, "context-")
	if err != nil {
		return nil, err
	}
	return unpackSource(ctx, spec, tmp)
}

// isArchive reports whether file is a (compressed) tar archive.
func isArchive(file string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	return isTarStream(bufio.NewReaderSize(f, 1<<16))
}

// dockerfileSource is a downloaded Dockerfile with an empty context.
func dockerfileSource(file, tmp string) (*Source, error) {
	data, err := os.ReadFile(file)
	if err == nil && len(data) == 0 {
		err = fmt.Errorf("no contents in %q", file)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	dir := filepath.Join(tmp, "context")
	if err := os.Mkdir(dir, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Source{Dir: dir, Dockerfile: data, tmp: tmp}, nil
}

// Discover finds the Dockerfile of a context that named none: the one
// the context argument was, else Containerfile, else Dockerfile in the
// context directory, as Buildah looks for them.
func Discover(src *Source) (string, error) {
	if src.DockerfilePath != "" {
		return src.DockerfilePath, nil
	}
	p := filepath.Join(src.Dir, "Containerfile")
	fi, err := os.Stat(p)
	if err != nil {
		p = filepath.Join(src.Dir, "Dockerfile")
		if fi, err = os.Stat(p); err != nil {
			return "", fmt.Errorf("cannot find Containerfile or Dockerfile in context directory: %w", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("assumed Containerfile %q is not a file", p)
	}
	return p, nil
}

func unpackSource(ctx context.Context, file, tmp string) (*Source, error) {
	f, err := os.Open(file)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	defer f.Close()
	dir := filepath.Join(tmp, "context")
	if err := os.Mkdir(dir, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if _, err := archive.Apply(ctx, dir, f, archive.ApplyOptions{}); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("build context %s: not a directory or a tar archive: %w", file, err)
	}
	return &Source{Dir: dir, tmp: tmp}, nil
}

// sourceFromStream reads stdin: a (compressed) tar is the context;
// anything else is a Dockerfile with an empty context.
func sourceFromStream(ctx context.Context, r io.Reader, tmpDir string) (*Source, error) {
	tmp, err := os.MkdirTemp(tmpDir, "context-")
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(r, 1<<16)
	if isTarStream(br) {
		file := filepath.Join(tmp, "stdin.tar")
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, br)
			err = closeErr(f, err)
		}
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("reading the context from stdin: %w", err)
		}
		return unpackSource(ctx, file, tmp)
	}
	data, err := io.ReadAll(io.LimitReader(br, 16<<20))
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	dir := filepath.Join(tmp, "context")
	if err := os.Mkdir(dir, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &Source{Dir: dir, Dockerfile: data, tmp: tmp}, nil
}

func closeErr(f *os.File, err error) error {
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// isTarStream sniffs whether br starts a (compressed) tar stream.
func isTarStream(br *bufio.Reader) bool {
	head, _ := br.Peek(1 << 12)
	rc, _, err := archive.Decompress(bytes.NewReader(head))
	if err != nil {
		return false
	}
	defer rc.Close()
	buf := make([]byte, 512)
	n, _ := io.ReadFull(rc, buf)
	return n >= 262 && string(buf[257:262]) == "ustar"
}

// IsFetched reports whether a build context spec names something
// OpenSource fetches (a git repository, a URL) or reads from stdin.
func IsFetched(spec string) bool {
	return spec == "-" || isGitSource(spec) || container.IsURL(spec)
}

// isGitSource reports whether spec names a git repository.
func isGitSource(spec string) bool {
	for _, p := range []string{"git://", "git@", "ssh://", "github.com/"} {
		if strings.HasPrefix(spec, p) {
			return true
		}
	}
	base, _, _ := strings.Cut(spec, "#")
	return strings.HasSuffix(base, ".git") || strings.Contains(spec, "#")
}

// gitSource fetches a repository (with the git binary) at "#ref[:subdir]"
// as Buildah does: git init, remote add, a shallow fetch of the ref (HEAD
// by default; whole when the server cannot serve part of it), a checkout,
// then its submodules. A commit the server will not serve alone (a short
// one) is found in a fetch of everything.
func gitSource(ctx context.Context, spec, tmpDir string) (*Source, error) {
	repo, frag, _ := strings.Cut(spec, "#")
	ref, subdir, _ := strings.Cut(frag, ":")
	if strings.HasPrefix(repo, "github.com/") {
		repo = "https://" + repo
	}
	tmp, err := os.MkdirTemp(tmpDir, "context-")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(tmp, "repo")
	git := func(what string, args ...string) error {
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err == nil {
			return nil
		}
		ee := (*exec.ExitError)(nil)
		gitFailed := errors.As(err, &ee) && ee.ExitCode() > 0
		err = fmt.Errorf("git context %s: failed while performing `git %s`: %v: %s", repo, what, err, strings.TrimSpace(string(out)))
		if gitFailed {
			err = &ExitError{Code: ee.ExitCode(), Err: err} // git's status, as Buildah exits
		}
		return err
	}
	fail := func(err error) (*Source, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fail(err)
	}
	want := ref
	if want == "" {
		want = "HEAD"
	}
	for _, step := range [][]string{{"init", "init", "--quiet"}, {"remote add", "remote", "add", "origin", repo}} {
		if err := git(step[0], step[1:]...); err != nil {
			return fail(err)
		}
	}
	// Shallow where the server can (git's "dumb" HTTP cannot), else whole.
	err = git("fetch", "fetch", "--quiet", "--depth=1", "origin", want)
	if err != nil {
		err = git("fetch", "fetch", "--quiet", "origin", want)
	}
	switch {
	case err == nil:
		want = "FETCH_HEAD"
	case !looksLikeCommit(ref):
		return fail(err)
	default:
		if err := git("fetch", "fetch", "--quiet", "origin"); err != nil {
			return fail(err)
		}
	}
	if err := git("checkout", "checkout", "--quiet", want); err != nil {
		return fail(err)
	}
	if err := git("submodule update", "submodule", "update", "--quiet", "--init", "--recursive"); err != nil {
		return fail(err)
	}
	ctxDir := dir
	if subdir != "" {
		if err := checkSource(subdir); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
		ctxDir = filepath.Join(dir, subdir)
		if fi, err := os.Stat(ctxDir); err != nil || !fi.IsDir() {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("git context %s: no directory %q", spec, subdir)
		}
	}
	return &Source{Dir: ctxDir, tmp: tmp}, nil
}

func looksLikeCommit(ref string) bool {
	if len(ref) < 7 || len(ref) > 40 {
		return false
	}
	for _, c := range ref {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
