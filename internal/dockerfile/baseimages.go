package dockerfile

import (
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BaseImages lists the images the stages of o's Dockerfile start from
// (after --from, global ARGs and --build-context), without scratch and
// earlier stages, each once, in order: what --all-platforms looks at.
func BaseImages(o Options) ([]string, error) {
	df, err := parseDockerfile(o.DockerfileName, o.Dockerfile)
	if err != nil {
		return nil, err
	}
	global, err := globalArgs(df, ocispec.Platform{}, o.Args, &usage{})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range df.stages {
		name, err := expandWord(df.lexer(), s.base, envGetter{args: fromArgs(df, s, global, o.Args)})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: FROM %s: %w", df.name, s.line, s.base, err)
		}
		if s.index == 0 && o.From != "" {
			name = o.From
		}
		if _, ok := df.lookupNamed(name, s.index); ok || strings.EqualFold(name, "scratch") {
			continue
		}
		if v, ok := o.Contexts[name]; ok {
			ref, isImage := imageRef(v)
			if !isImage {
				continue
			}
			name = ref
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, nil
}
