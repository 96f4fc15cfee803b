package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// ErrNoPreprocessor is returned when a Containerfile.in needs cpp and
// it is not installed.
var ErrNoPreprocessor = errors.New(".in support requires cpp to be installed")

// Preprocess runs a Containerfile.in through the C preprocessor as
// Buildah does (cpp -E -iquote DIR -traditional -undef -, then flags):
// its #include, #define and #if lines are expanded. When cpp fails but
// still printed something, its output is used and its complaints are
// logged ("Ignoring ..."), as Buildah does.
func Preprocess(ctx context.Context, name string, data []byte, dir string, flags []string, log *slog.Logger) ([]byte, error) {
	cpp, err := exec.LookPath("cpp")
	if err != nil {
		return nil, fmt.Errorf("preprocessing %s: %w", name, ErrNoPreprocessor)
	}
	args := append([]string{"-E", "-iquote", dir, "-traditional", "-undef", "-"}, flags...)
	cmd := exec.CommandContext(ctx, cpp, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if stderr.Len() > 0 && log != nil {
			log.Warn("Ignoring " + stderr.String())
		}
		if stdout.Len() == 0 {
			return nil, fmt.Errorf("preprocessing %s: preprocessor produced no output: %w", name, err)
		}
	}
	return stdout.Bytes(), nil
}

// SplitWords splits s into words as a shell would, with quotes.
func SplitWords(s string) ([]string, error) {
	return shell.NewLex('\\').ProcessWords(strings.TrimSpace(s), emptyEnv{})
}

type emptyEnv struct{}

func (emptyEnv) Get(string) (string, bool) { return "", false }
func (emptyEnv) Keys() []string            { return nil }
