package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/internal/container"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// The registry build cache is the builder's remote cache.
var _ dockerfile.RemoteCache = (*images.RegistryCache)(nil)

func init() {
	register(newBuildCommand)
}

func newBuildCommand() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:     "build [options] [CONTEXT]",
		Aliases: []string{"bud", "build-using-dockerfile"},
		Short:   "Build an image from a Dockerfile or Containerfile",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, o, args)
		},
	}
	addBuildFlags(cmd.Flags(), &o)
	return cmd
}

// buildIO are where a build writes: the step output, the warnings, and
// stdout for the image ID (and a tar --output of "-").
type buildIO struct {
	out, errOut, stdout io.Writer
	logger              *slog.Logger
	close               func() error
	// tarStdout is set when --output - writes a tar to stdout: the ID
	// is not printed there.
	tarStdout bool
}

// openBuildIO applies --logfile and --quiet, and sends everything but
// the tar to stderr when --output - takes stdout.
func openBuildIO(cmd *cobra.Command, o buildOptions, logfile string, toStdout bool) (buildIO, error) {
	bio := buildIO{out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), stdout: cmd.OutOrStdout(), logger: logger,
		close: func() error { return nil }, tarStdout: toStdout}
	if toStdout {
		bio.out = bio.errOut
	}
	if logfile != "" {
		f, err := os.OpenFile(logfile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return bio, fmt.Errorf("opening logfile: %w", err)
		}
		bio.out, bio.errOut, bio.close = f, f, f.Close
		bio.logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: logLevel()}))
	}
	if o.Quiet {
		bio.out = nil
	}
	return bio, nil
}

// parseOutputs parses the --output values and reports whether one of
// them is stdout.
func parseOutputs(specs []string) (outputs []outputSpec, toStdout bool, err error) {
	for _, spec := range specs {
		out, err := parseOutput(spec)
		if err != nil {
			return nil, false, err
		}
		toStdout = toStdout || out.dest == "-"
		outputs = append(outputs, out)
	}
	return outputs, toStdout, nil
}

// baseResolver finds a build's base images in st, pulling them as policy
// says, with progress on bio's stderr.
func baseResolver(o buildOptions, st *store.Store, bio buildIO, policy images.PullPolicy) func(context.Context, string, ocispec.Platform) (store.Image, error) {
	return func(ctx context.Context, ref string, p ocispec.Platform) (store.Image, error) {
		prog := newCopyProgress(bio.errOut, o.Quiet || bio.out == nil)
		defer prog.finish()
		eo := images.EnsureOptions{Policy: policy, Logger: bio.logger,
			Pull: newPullOptions(o.registryFlags, o.retryFlags, transport.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})}
		eo.Pull.Progress = prog.progress()
		if attempt != nil {
			// A pull's progress is not held back: it is made in the
			// user namespace, where the build then finds the image.
			if policy != images.PullMissing && policy != images.PullNever {
				return store.Image{}, fmt.Errorf("%s: pulling waits for the user namespace", ref)
			}
			eo.Policy = images.PullNever
		}
		return images.Ensure(ctx, st, ref, eo)
	}
}

func runBuild(cmd *cobra.Command, o buildOptions, args []string) error {
	// Ctrl-C or SIGTERM stops the build cleanly: its containers and
	// mounts are removed before kiln exits.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bo, err := buildSpec(cmd, o)
	if err != nil {
		return err
	}
	outputs, toStdout, err := parseOutputs(o.Outputs)
	if err != nil {
		return err
	}
	platforms, err := buildPlatforms(o)
	if err != nil {
		return err
	}
	if len(platforms) > 1 && o.IIDFile != "" {
		return usageErrorf("building multiple images, but --iidfile %q can only be used to store one image ID", o.IIDFile)
	}
	bio, err := openBuildIO(cmd, o, o.Logfile, toStdout)
	if err != nil {
		return err
	}
	defer bio.close()
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	spec := contextSpec(o, args)
	src, err := dockerfile.OpenSource(ctx, spec, cmd.InOrStdin(), st.RunRoot())
	if err != nil {
		return withBuildExit(err) // a git clone's status
	}
	defer src.Close()
	bo.ContextDir = src.Dir
	closeContexts, err := fetchContexts(ctx, bo.Contexts, st.RunRoot())
	defer closeContexts()
	if err != nil {
		return err
	}
	dfPath, err := readDockerfile(cmd, o, src, &bo, bio.logger)
	if err != nil {
		return err
	}
	if bo.IgnoreFile, bo.Ignore, err = dockerfile.FindIgnore(o.IgnoreFile, dfPath, src.Dir); err != nil {
		return err
	}
	policy, err := buildPullPolicy(o)
	if err != nil {
		return err
	}
	sys := o.registryFlags.systemContext()
	if o.AllPlatforms {
		if platforms, err = allPlatforms(ctx, st, bo, sys); err != nil {
			return err
		}
	}
	if len(platforms) > 1 {
		for _, out := range outputs {
			if out.tar {
				return usageErrorf("--output %s: a tar of several platforms is not supported: use type=local, which writes a directory per platform", out.dest)
			}
		}
	}
	bases := newBaseRecorder()
	bo.Resolve = bases.wrap(baseResolver(o, st, bio, policy))
	if o.retryFlags != (retryFlags{}) && cmd.Flags().Changed("retry") {
		bio.logger.Debug(fmt.Sprintf("Setting MaxPullPushRetries to %d and PullPushRetryDelay to %s", o.Retry, o.RetryDelay))
	}
	rc, err := images.NewRegistryCache(st, images.RegistryCacheOptions{From: o.CacheFrom, To: o.CacheTo, System: sys, Logger: bio.logger})
	if err != nil {
		return err
	}
	if rc != nil {
		bo.Remote = rc
	}
	rusage, closeRusage, err := openRusage(cmd, o, bio)
	if err != nil {
		return err
	}
	defer closeRusage()
	bo.Run.Rusage = rusage
	bo.Run.RuntimeLog = bio.errOut
	built, err := buildEach(ctx, o, st, bo, bio, platforms, toStdout, cmd)
	if ctx.Err() != nil && cmd.Context().Err() == nil {
		return &exitError{code: 130, err: fmt.Errorf("build interrupted: %w", err)}
	}
	if err != nil {
		return withBuildExit(err)
	}
	for _, b := range built {
		if err := verifyAndAttest(ctx, st, o, b, bio, bases); err != nil {
			return err
		}
	}
	return buildDone(cmd, o, st, bo, built, outputs, bio)
}

// fetchContexts replaces the URLs among the --build-context values with
// the directories they are fetched into; the function it returns removes
// those.
func fetchContexts(ctx context.Context, contexts map[string]string, runRoot string) (func(), error) {
	var srcs []*dockerfile.Source
	closeAll := func() {
		for _, s := range srcs {
			s.Close()
		}
	}
	for name, v := range contexts {
		if container.IsURL(v) {
			csrc, err := dockerfile.OpenSource(ctx, v, nil, runRoot)
			if err != nil {
				return closeAll, fmt.Errorf("--build-context %s: %w", name, err)
			}
			srcs = append(srcs, csrc)
			contexts[name] = csrc.Dir
		}
	}
	return closeAll, nil
}

// verifyAndAttest checks a built image with --verify-reproducible and
// attaches what --attest asks for.
func verifyAndAttest(ctx context.Context, st *store.Store, o buildOptions, b builtImage, bio buildIO, bases *baseRecorder) error {
	if o.repro.Verify {
		if err := verifyReproducible(ctx, st, b.opts, b.res, bio.errOut); err != nil {
			return err
		}
	}
	return o.attest.attach(ctx, st, b.opts, b.res, bases)
}

// contextSpec is the context argument; without one, the directory of
// the first local -f file, else the working directory, as Buildah does.
func contextSpec(o buildOptions, args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	for _, f := range o.Files {
		if f == "-" || container.IsURL(f) {
			continue
		}
		if abs, err := filepath.Abs(f); err == nil {
			return filepath.Dir(abs)
		}
	}
	return "."
}

// builtImage is one platform's result.
type builtImage struct {
	res      dockerfile.Result
	platform ocispec.Platform
	opts     dockerfile.Options // the options it was built with
}

// buildEach builds for each platform, several at once when there are
// several: up to --jobs builds run together (one per CPU by default), each
// with its own stages bounded by --jobs too, and each line of their output
// prefixed with the platform, as Buildah does. With several platforms the
// images get no tags (-t names the manifest list buildDone makes). The
// first build to fail cancels the others; its error is returned, prefixed
// with its platform. The results are in the order of platforms.
func buildEach(ctx context.Context, o buildOptions, st *store.Store, bo dockerfile.Options, bio buildIO, platforms []ocispec.Platform, toStdout bool, cmd *cobra.Command) ([]builtImage, error) {
	if len(platforms) == 1 {
		bo.Platform = platforms[0]
		bo.Out, bo.Logger = bio.out, bio.logger
		res, err := dockerfile.Build(ctx, st, bo)
		return []builtImage{{res: res, platform: platforms[0], opts: bo}}, err
	}
	bo.Tags, bo.CommitName = nil, ""
	shared := bio.out
	if shared != nil {
		shared = &syncWriter{w: shared}
	}
	rusageToOut := bo.Run.Rusage != nil && bo.Run.Rusage == bio.out
	if bo.Run.Rusage != nil && !rusageToOut {
		bo.Run.Rusage = &syncWriter{w: bo.Run.Rusage}
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	sem := make(chan struct{}, jobs)
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every platform's options and output first: a log file that cannot
	// be opened fails the build before any platform starts.
	opts := make([]dockerfile.Options, len(platforms))
	for i, p := range platforms {
		pio := bio
		pio.out = shared
		if o.Logfile != "" && o.LogSplit {
			var err error
			if pio, err = openBuildIO(cmd, o, logfileFor(o, p, true), toStdout); err != nil {
				return nil, err
			}
			defer pio.close()
		}
		opts[i] = bo
		opts[i].Platform = p
		opts[i].Out, opts[i].Logger = prefixWriter(pio.out, "["+platformString(p)+"] "), pio.logger
		if rusageToOut {
			opts[i].Run.Rusage = opts[i].Out // its lines prefixed too
		}
	}
	built := make([]builtImage, len(platforms))
	errs := make([]error, len(platforms))
	var wg sync.WaitGroup
	for i, p := range platforms {
		pbo := opts[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-bctx.Done():
				errs[i] = bctx.Err()
				return
			}
			defer func() { <-sem }()
			res, err := dockerfile.Build(bctx, st, pbo)
			if lp, ok := pbo.Out.(*linePrefixer); ok {
				lp.flush()
			}
			if err != nil {
				errs[i] = fmt.Errorf("[%s]: %w", platformString(p), err)
				cancel()
				return
			}
			built[i] = builtImage{res: res, platform: p, opts: pbo}
		}()
	}
	wg.Wait()
	return built, firstError(errs)
}

// firstError is the first error of a build that failed on its own, not
// because another one's failure cancelled it.
func firstError(errs []error) error {
	var cancelled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			if cancelled == nil {
				cancelled = err
			}
		default:
			return err
		}
	}
	return cancelled
}

// syncWriter serializes the writes of concurrent builds.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// buildDone makes the manifest lists of a build for several platforms
// (each -t names one) and adds the images to --manifest, writes --iidfile
// and --output, and prints the ID: the image's for one platform, even
// with --manifest, as Buildah 1.28 prints it (bud '--manifest flag'); for
// several, the list's (Buildah prints each image's).
func buildDone(cmd *cobra.Command, o buildOptions, st *store.Store, bo dockerfile.Options, built []builtImage, outputs []outputSpec, bio buildIO) error {
	ctx := cmd.Context()
	if bio.out != nil {
		for _, t := range bo.Tags {
			fmt.Fprintf(bio.out, "Successfully tagged %s\n", t)
		}
	}
	id := built[0].res.ImageID
	if len(built) > 1 {
		// Several platforms: each tag names a manifest list of the images,
		// as BuildKit names the index it makes.
		var bs []images.BuiltImage
		for _, b := range built {
			bs = append(bs, images.BuiltImage{ID: b.res.ImageID, Platform: b.platform})
		}
		for _, t := range bo.Tags {
			listID, err := images.SetBuiltList(ctx, st, t, bs)
			if err != nil {
				return err
			}
			id = listID
		}
	}
	if o.Manifest != "" {
		list, err := normalizeListName(o.Manifest)
		if err != nil {
			return err
		}
		for _, b := range built {
			if err := images.AddBuilt(ctx, st, list, b.res.ImageID, b.platform); err != nil {
				return err
			}
		}
		if len(built) > 1 {
			ml, err := st.ManifestList(ctx, list)
			if err != nil {
				return err
			}
			id = images.ListID(ml)
		}
	}
	if err := writeTransportTags(ctx, st, o, built); err != nil {
		return err
	}
	if !bio.tarStdout {
		fmt.Fprintln(bio.stdout, id)
	}
	if o.IIDFile != "" {
		// The image's ID, not the list's: Buildah writes it as it commits.
		if err := os.WriteFile(o.IIDFile, []byte("sha256:"+built[0].res.ImageID), 0o644); err != nil {
			return err
		}
	}
	for _, out := range outputs {
		if len(built) == 1 {
			if err := writeOutput(ctx, st, built[0].res.ImageID, out, bio.stdout); err != nil {
				return err
			}
			continue
		}
		// Several platforms: a directory each, named as BuildKit names
		// them (linux_arm64, linux_arm_v7).
		for _, b := range built {
			pout := out
			pout.dest = filepath.Join(out.dest, strings.ReplaceAll(platformString(b.platform), "/", "_"))
			if err := writeOutput(ctx, st, b.res.ImageID, pout, bio.stdout); err != nil {
				return err
			}
		}
	}
	return nil
}

// allPlatforms are the platforms every base image of the build is
// available for (--all-platforms).
func allPlatforms(ctx context.Context, st *store.Store, bo dockerfile.Options, sys *transport.SystemContext) ([]ocispec.Platform, error) {
	bases, err := dockerfile.BaseImages(bo)
	if err != nil {
		return nil, err
	}
	var sets [][]ocispec.Platform
	for _, ref := range bases {
		ps, err := images.Platforms(ctx, st, ref, sys)
		if err != nil {
			return nil, err
		}
		sets = append(sets, ps)
	}
	out := images.CommonPlatforms(sets)
	if len(out) == 0 {
		return nil, fmt.Errorf("--all-platforms: the base images %s have no platform in common", strings.Join(bases, ", "))
	}
	return out, nil
}

// openRusage is where --log-rusage lines go: --rusage-logfile, else the
// build's output.
func openRusage(cmd *cobra.Command, o buildOptions, bio buildIO) (io.Writer, func() error, error) {
	none := func() error { return nil }
	switch {
	case !o.LogRusage && o.RusageLogfile == "":
		return nil, none, nil
	case !o.LogRusage:
		return nil, none, usageErrorf("--rusage-logfile needs --log-rusage")
	case o.RusageLogfile != "":
		f, err := os.OpenFile(o.RusageLogfile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, none, err
		}
		return f, f.Close, nil
	case bio.out != nil:
		return bio.out, none, nil
	}
	return cmd.ErrOrStderr(), none, nil
}

// logLevel is the level the global logger logs at.
func logLevel() slog.Level {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if logger.Enabled(context.Background(), l) {
			return l
		}
	}
	return slog.LevelError
}

// prefixWriter prefixes every line written to w (nil stays nil). It
// writes whole lines only, each in one Write, so that the lines of
// concurrent builds never mix; flush writes what is left of the last.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &linePrefixer{w: w, prefix: prefix}
}

type linePrefixer struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  string
	partial []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	i := bytes.LastIndexByte(l.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(l.partial[:i+1], []byte("\n")) {
		if len(line) > 0 {
			b.WriteString(l.prefix)
			b.Write(line)
		}
	}
	l.partial = append(l.partial[:0], l.partial[i+1:]...)
	if _, err := l.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes the last line when it has no newline, with one.
func (l *linePrefixer) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		_, _ = l.w.Write(append(append([]byte(l.prefix), l.partial...), '\n'))
		l.partial = nil
	}
}

func buildArgs(o buildOptions) (map[string]string, error) {
	args := map[string]string{}
	var lines []string
	for _, f := range o.BuildArgFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	for _, a := range append(lines, o.BuildArgs...) {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			val, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = val
		}
		args[k] = v
	}
	return args, nil
}

// parseSecrets parses --secret as buildx and Buildah do: id=ID with
// src=FILE, env=VAR or type=env,src=VAR; with neither, the variable ID
// when it is set, else the file ID.
func parseSecrets(specs []string) (map[string]dockerfile.Secret, error) {
	out := map[string]dockerfile.Secret{}
	for _, spec := range specs {
		var id, typ, src string
		var s dockerfile.Secret
		for _, kv := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				id = v
			case "src", "source":
				src = v
			case "env":
				s.Env = v
			case "type":
				typ = v
			default:
				return nil, usageErrorf("--secret %q: unknown key %q (use id, src, env, type)", spec, k)
			}
		}
		switch typ {
		case "env":
			if s.Env == "" {
				s.Env = src
			}
		case "file", "":
			s.Src = src
		default:
			return nil, usageErrorf("--secret %q: type must be file or env", spec)
		}
		if id == "" {
			id = s.Src + s.Env
			if i := strings.LastIndex(id, "/"); i >= 0 {
				id = id[i+1:]
			}
		}
		if id == "" {
			return nil, usageErrorf("--secret %q: give id=ID with src=FILE or env=VAR", spec)
		}
		if s.Src == "" && s.Env == "" {
			if _, ok := os.LookupEnv(id); ok {
				s.Env = id
			} else {
				s.Src = id
			}
		}
		out[id] = s
	}
	return out, nil
}

func keyValues(list []string, flag string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, usageErrorf("%s %q: want NAME=VALUE", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func buildPullPolicy(o buildOptions) (images.PullPolicy, error) {
	switch {
	case o.PullAlways:
		return images.PullAlways, nil
	case o.PullNever:
		return images.PullNever, nil
	}
	return images.ParsePullPolicy(o.Pull)
}

func envBoolOr(name string, def bool) bool {
	switch strings.ToLower(os.Getenv(name)) {
	case "1", "true", "yes":
		return true
	case "0", "false", "no":
		return false
	}
	return def
}

// withBuildExit gives err the exit status a build error carries (a RUN's
// or a git clone's), 125 otherwise.
func withBuildExit(err error) error {
	var ee *dockerfile.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.Code, err: err}
	}
	return err
}

// writeTransportTags writes the image to each -t that names a transport
// ("dir:PATH", "oci:DIR:NAME", "docker://..."), as Buildah commits a build
// there; the policy is not asked, as for any image kiln made.
func writeTransportTags(ctx context.Context, st *store.Store, o buildOptions, built []builtImage) error {
	for _, t := range o.Tags {
		if !hasTransport(t) {
			continue
		}
		if len(built) > 1 {
			return usageErrorf("-t %s: several platforms are written to a transport with manifest push, not -t", t)
		}
		ref, err := transport.ParseReference(t)
		if err != nil {
			return usageErrorf("-t %s: %v", t, err)
		}
		po := images.PushOptions{System: o.registryFlags.systemContext()}
		po.Copy.Logger = logger
		o.retryFlags.apply(po.System, &po.Copy)
		if _, err := images.Push(ctx, st, built[0].res.ImageID, ref, po); err != nil {
			return fmt.Errorf("writing the image to %s: %w", t, err)
		}
	}
	return nil
}
