package dockerfile

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
)

// Word expansion takes its words from a Dockerfile and its values from
// --build-arg, ARG defaults and ENV: none of them may make kiln spend
// unbounded memory or time.

// maxExpansion is the largest result an expansion may have: anything
// that would be larger must be refused. BuildKit's lexer has no bound,
// and kiln puts none around it yet (issue 18): TestExpandBounded and
// TestArgDoublingBounded fail until it does.
const maxExpansion = 1 << 20

// stageExpander returns the expander a stage uses for its instructions
// (ENV, WORKDIR, COPY, ...), with ARG a and ENV E set to value.
func stageExpander(value string) func(string) (string, error) {
	args := newArgSet()
	args.set("a", value)
	r := &stageRun{lex: shell.NewLex('\\'), args: args, cfg: &image.Config{Config: image.ContainerConfig{Env: []string{"E=" + value}}}}
	return r.expander(map[string]struct{}{})
}

func TestExpand(t *testing.T) {
	tests := []struct {
		word, value, want string
	}{
		{"${a:-${a:-${a:-x}}}", "", "x"},
		{"${b:-${b:-${b:-${b:-${b:-x}}}}}", "v", "x"},
		{"${a:+${a:+${a:+y}}}", "v", "y"},
		{"$a$E${a}${E}", "v", "vvvv"},
		{strings.Repeat("$a", 1000), "0123456789abcdef", strings.Repeat("0123456789abcdef", 1000)},
		{"${a//v/w}", "vvv", "www"},
		{"${a#v}-${a%v}-${a##*v}", "vxv", "xv-vx-"},
		{`\$a '$a' "$a"`, "v", `$a $a v`},
	}
	for _, tt := range tests {
		got, err := stageExpander(tt.value)(tt.word)
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) with a=%q: %q, %v; want %q", tt.word, tt.value, got, err, tt.want)
		}
	}
}

// TestExpandBounded: short words and values whose expansion is far
// larger than they are must be refused. Each case is scaled to stay
// below 100 MB should the bound be missing.
func TestExpandBounded(t *testing.T) {
	nest := func(depth int) string {
		return strings.Repeat("${a//?/", depth) + "$a" + strings.Repeat("}", depth)
	}
	tests := []struct {
		name, word, value string
	}{
		{"a 42-byte word nesting replacements, a 16-byte value: 16 MiB", nest(5), strings.Repeat("x", 16)},
		{"a 10-byte word, a 4 KiB build arg: 16 MiB", "${a//?/$a}", strings.Repeat("x", 4096)},
		{"an ENV value replaced into itself", "${E//?/$E$E$E$E}", strings.Repeat("x", 1024)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stageExpander(tc.value)(tc.word)
			if err == nil && len(got) > maxExpansion {
				t.Errorf("expanding %q (%d bytes) with a %d-byte value gave %d bytes, more than %d", tc.word, len(tc.word), len(tc.value), len(got), maxExpansion)
			}
		})
	}
}

// TestArgDoublingBounded: each ARG doubles the one before; 22 lines make
// 8 MiB, 34 would make 32 GiB. The build must be refused.
func TestArgDoublingBounded(t *testing.T) {
	var df strings.Builder
	df.WriteString("ARG a0=xx\n")
	for i := 1; i <= 22; i++ {
		fmt.Fprintf(&df, "ARG a%d=$a%d$a%d\n", i, i-1, i-1)
	}
	df.WriteString("FROM scratch\n")
	d, err := parseDockerfile("Dockerfile", []byte(df.String()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := globalArgs(d, ocispec.Platform{}, nil, &usage{})
	if err != nil {
		return // refused: what a bound does
	}
	for _, k := range g.keys {
		if n := len(g.values[k]); n > maxExpansion {
			t.Errorf("ARG %s is %d bytes, more than %d", k, n, maxExpansion)
			break
		}
	}
}

// expansionEstimate bounds what word can expand to with values of up to
// v bytes: each ${...} can at most multiply what it holds by v+1 (a
// replacement at every position) and add the word's own text.
func expansionEstimate(word string, v int) float64 {
	n := strings.Count(word, "${")
	return float64(len(word)+1) * math.Pow(float64(v+len(word)+2), float64(n+1))
}

// FuzzExpand expands arbitrary words with arbitrary values. Invariants:
// no panic, and no result beyond maxExpansion. Inputs whose worst case
// exceeds 256 MiB are not run: the fuzzer finds the unbounded cases at
// sizes this machine survives.
func FuzzExpand(f *testing.F) {
	for _, s := range [][2]string{
		{"$a", "v"}, {"${a:-x}", ""}, {"${a:+${E}}", "v"}, {"${a//v/w}", "vvv"}, {"${a/#v/w}", "vv"},
		{"${a#*}", "abc"}, {"${a%%?}", "abc"}, {`"$a" '$a' \$a`, "v"}, {"${a?no}", ""}, {"${E:-${a:-${b}}}", "v"},
		{"$1$@$*$#$?$-$$$!$0", "v"}, {"${a:1:2}", "abc"}, {"<<EOF", "x"}, {"${}", ""}, {"${a", "x"},
	} {
		f.Add(s[0], s[1], uint8(0))
	}
	f.Fuzz(func(t *testing.T, word, value string, rep uint8) {
		value = strings.Repeat(value, int(rep)+1) // long values are cheap to find
		if len(word) > 64 || len(value) > 64<<10 || expansionEstimate(word, len(value)) > 1<<28 {
			return
		}
		exp := stageExpander(value)
		got, err := exp(word)
		if err == nil && len(got) > maxExpansion {
			t.Fatalf("expanding %q (%d bytes) with a %d-byte value gave %d bytes", word, len(word), len(value), len(got))
		}
		lex := shell.NewLex('\\')
		args := newArgSet()
		args.set("a", value)
		words, err := lex.ProcessWords(word, envGetter{args: args})
		if err == nil && len(strings.Join(words, " ")) > maxExpansion {
			t.Fatalf("splitting %q with a %d-byte value gave %d bytes", word, len(value), len(strings.Join(words, " ")))
		}
	})
}
