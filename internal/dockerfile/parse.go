package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// ErrSyntax is wrapped by every error about the Dockerfile's text.
var ErrSyntax = errors.New("dockerfile syntax error")

// ErrNoStage is wrapped when --target, FROM or --from names no stage.
var ErrNoStage = errors.New("no such stage")

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	name     string
	stages   []*stage
	metaArgs []instructions.ArgCommand
	escape   rune
	// mountExtras are the RUN --mount options BuildKit's grammar lacks,
	// by the RUN's line and the mount's position (see rewriteMountFlags).
	mountExtras map[int][][]string
}

// stage is one FROM section.
type stage struct {
	index    int
	name     string // lower-cased AS name; "" when unnamed
	base     string // FROM's argument before expansion
	platform string
	commands []instructions.Command
	line     int
	original string
}

// label names the stage in messages: its name, or its index.
func (s *stage) label() string {
	if s.name != "" {
		return s.name
	}
	return strconv.Itoa(s.index)
}

// parseDockerfile parses data with BuildKit's grammar. Errors name the
// file and line as Docker prints them.
func parseDockerfile(name string, data []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, locate(name, err)
	}
	if err := checkFlagValues(name, res.AST); err != nil {
		return nil, err
	}
	extras := rewriteMountFlags(res.AST)
	names := rewriteStageNames(res.AST)
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locate(name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%w: %s: no FROM instruction", ErrSyntax, name)
	}
	df := &dockerfile{name: name, metaArgs: metaArgs, escape: res.EscapeToken, mountExtras: extras}
	for i, s := range stages {
		if orig, ok := names[s.Name]; ok {
			s.Name = orig
		}
		st := &stage{index: i, name: strings.ToLower(s.Name), base: s.BaseName, platform: s.Platform, commands: s.Commands, original: s.SourceCode}
		if len(s.Location) > 0 {
			st.line = s.Location[0].Start.Line
		}
		df.stages = append(df.stages, st)
	}
	return df, nil
}

// checkFlagValues refuses COPY and ADD flags that need a value and have
// none ("COPY --chown 1:1 a b") and a RUN --mount's empty from=, in
// Buildah's words, which scripts grep.
func checkFlagValues(name string, root *parser.Node) error {
	for _, n := range root.Children {
		cmd := strings.ToUpper(n.Value)
		for _, f := range n.Flags {
			switch {
			case cmd == "COPY" && (f == "--chmod" || f == "--chown" || f == "--from"):
				return fmt.Errorf("%w: %s:%d: COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from=<image|stage> flags", ErrSyntax, name, n.StartLine)
			case cmd == "ADD" && (f == "--chmod" || f == "--chown"):
				return fmt.Errorf("%w: %s:%d: ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags", ErrSyntax, name, n.StartLine)
			case cmd == "RUN" && strings.HasPrefix(f, "--mount=") && slices.Contains(strings.Split(f[len("--mount="):], ","), "from="):
				// BuildKit would take it for no from at all.
				return fmt.Errorf("%w: %s:%d: unable to resolve argument for `from=`: from points to an empty value", ErrSyntax, name, n.StartLine)
			}
		}
	}
	return nil
}

// validStageName is BuildKit's rule for stage names.
var validStageName = regexp.MustCompile(`^[a-z][a-z0-9-_.]*$`)

// rewriteStageNames lets through the stage names BuildKit's grammar
// refuses and Buildah accepts ("FROM build AS platform-arm/v7"): each is
// replaced in the tree by a name BuildKit takes, and the returned map
// gives the original back.
func rewriteStageNames(root *parser.Node) map[string]string {
	names := map[string]string{}
	for i, n := range root.Children {
		if !strings.EqualFold(n.Value, "from") || n.Next == nil || n.Next.Next == nil || n.Next.Next.Next == nil {
			continue
		}
		as, name := n.Next.Next, n.Next.Next.Next
		if !strings.EqualFold(as.Value, "as") || name.Next != nil || validStageName.MatchString(strings.ToLower(name.Value)) {
			continue
		}
		stand := fmt.Sprintf("kiln-stage-name-%d", i)
		names[stand] = name.Value
		name.Value = stand
	}
	return names
}

// CheckFile parses one of several files a build joins (-f a -f b), so
// that what is wrong in it alone, such as a bad escape directive, which
// joined would be only a comment, is refused with its name.
func CheckFile(name string, data []byte) error {
	if _, err := parser.Parse(bytes.NewReader(data)); err != nil {
		if strings.Contains(err.Error(), "escape token") {
			// Buildah's words, which scripts grep.
			return fmt.Errorf("%w: parsing additional Dockerfile %s: invalid ESCAPE directive: %v", ErrSyntax, name, err)
		}
		return fmt.Errorf("parsing additional Dockerfile %s: %w", name, locate(name, err))
	}
	return nil
}

// locate rewrites a BuildKit error as "FILE:LINE: message".
func locate(name string, err error) error {
	var le *parser.LocationError
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "dockerfile parse error on line ")
	if i := strings.Index(msg, ": "); i > 0 {
		if _, convErr := strconv.Atoi(msg[:i]); convErr == nil {
			msg = msg[i+2:]
		}
	}
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return fmt.Errorf("%w: %s:%d: %s", ErrSyntax, name, le.Locations[0][0].Start.Line, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrSyntax, name, msg)
}

// lookupStage finds a stage by name (case-insensitively) or index among
// the stages before limit (-1: all stages), as --from does.
func (df *dockerfile) lookupStage(ref string, limit int) (*stage, bool) {
	if s, ok := df.lookupNamed(ref, limit); ok {
		return s, true
	}
	if limit < 0 {
		limit = len(df.stages)
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < limit {
		return df.stages[i], true
	}
	return nil, false
}

// lookupNamed finds a stage by name only, as FROM does: "FROM 0" names
// an image, not the first stage.
func (df *dockerfile) lookupNamed(ref string, limit int) (*stage, bool) {
	if limit < 0 {
		limit = len(df.stages)
	}
	ref = strings.ToLower(ref)
	// A name two stages share is the nearer one's, as Buildah has it
	// (Docker refuses such a Dockerfile).
	for i := limit - 1; i >= 0; i-- {
		if s := df.stages[i]; s.name != "" && s.name == ref {
			return s, true
		}
	}
	return nil, false
}

// target returns the stage to build.
func (df *dockerfile) target(name string) (*stage, error) {
	if name == "" {
		return df.stages[len(df.stages)-1], nil
	}
	s, ok := df.lookupStage(name, -1)
	if !ok {
		return nil, fmt.Errorf("%w: --target %q names no stage in %s", ErrNoStage, name, df.name)
	}
	return s, nil
}

// lexer returns a word expander for this Dockerfile's escape character.
func (df *dockerfile) lexer() *shell.Lex { return shell.NewLex(df.escape) }

// rewriteMountFlags takes out of every RUN's --mount flags the options
// Buildah (and Podman) accept that BuildKit's grammar does not: SELinux
// relabelling ("z", "Z", "relabel=..."), which means nothing without
// SELinux, and "U" (chown to the process's user) and "tmpcopyup" (a
// tmpfs starts with what the image has at its target), which are kept
// by RUN line and mount position for the mount to apply.
func rewriteMountFlags(root *parser.Node) map[int][][]string {
	extras := map[int][][]string{}
	for _, n := range root.Children {
		if !strings.EqualFold(n.Value, "run") {
			continue
		}
		var perMount [][]string
		found := false
		for i, f := range n.Flags {
			spec, ok := strings.CutPrefix(f, "--mount=")
			if !ok {
				continue
			}
			var keep, extra []string
			for _, field := range strings.Split(spec, ",") {
				switch {
				case field == "z" || field == "Z" || strings.HasPrefix(field, "relabel="):
					found = true
				case field == "U" || field == "tmpcopyup":
					extra = append(extra, field)
					found = true
				default:
					keep = append(keep, field)
				}
			}
			n.Flags[i] = "--mount=" + strings.Join(keep, ",")
			perMount = append(perMount, extra)
		}
		if found {
			extras[n.StartLine] = perMount
		}
	}
	return extras
}
