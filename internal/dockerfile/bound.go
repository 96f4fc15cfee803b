package dockerfile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// MaxExpansion bounds what one word of a Dockerfile may expand to, and so
// every ARG and ENV value: a few short lines of replacements nested in
// replacements (${a//?/$a}) or of ARGs that double the one before would
// otherwise ask for gigabytes.
const MaxExpansion = 1 << 20

// ErrExpansionTooLarge: a word would expand beyond MaxExpansion.
var ErrExpansionTooLarge = errors.New("expands to more than 1 MiB")

// expand expands word as BuildKit's lexer does, after making sure that
// the result cannot exceed MaxExpansion: a word whose replacements could
// multiply beyond it is refused before the lexer builds the result.
func expand(lex *shell.Lex, word string, env shell.EnvGetter) (shell.ProcessWordResult, error) {
	if strings.Contains(word, "${") && strings.Contains(word, "/") {
		if b := expansionBound(word, longestValue(env)); b > MaxExpansion {
			return shell.ProcessWordResult{}, fmt.Errorf("%q %w (replacements inside replacements could make %.0f bytes)", word, ErrExpansionTooLarge, b)
		}
	}
	res, err := lex.ProcessWordWithMatches(word, env)
	if err == nil && len(res.Result) > MaxExpansion {
		return res, fmt.Errorf("%q %w (%d bytes)", word, ErrExpansionTooLarge, len(res.Result))
	}
	return res, err
}

// expandWord is expand for callers that need only the result.
func expandWord(lex *shell.Lex, word string, env shell.EnvGetter) (string, error) {
	res, err := expand(lex, word, env)
	return res.Result, err
}

func longestValue(env shell.EnvGetter) int {
	n := 0
	for _, k := range env.Keys() {
		if v, ok := env.Get(k); ok && len(v) > n {
			n = len(v)
		}
	}
	return n
}

// expansionBound is an upper bound of the length word expands to when no
// variable is longer than maxv bytes. Only ${name/pattern/replacement}
// multiplies (every character may be replaced); everything else adds.
// Quotes and escapes are not honoured here: reading a quoted or escaped
// "$" as an expansion only makes the bound larger.
func expansionBound(word string, maxv int) float64 {
	b, _ := boundUntil(word, 0, "", float64(maxv))
	return b
}

// boundUntil bounds word[i:] up to the first of stops at nesting depth
// 0 (or the end) and returns the bound and where it stopped.
func boundUntil(w string, i int, stops string, maxv float64) (float64, int) {
	var n float64
	for i < len(w) {
		c := w[i]
		switch {
		case strings.IndexByte(stops, c) >= 0:
			return n, i
		case c == '$' && i+1 < len(w) && w[i+1] == '{':
			b, j := boundBraced(w, i+2, maxv)
			n += b
			i = j
		case c == '$':
			n += maxv
			i++
		default:
			n++
			i++
		}
	}
	return n, i
}

// boundBraced bounds ${...} whose name starts at w[i:], and returns where
// it ends (after the closing brace).
func boundBraced(w string, i int, maxv float64) (float64, int) {
	for i < len(w) && (w[i] == '_' || w[i] >= 'a' && w[i] <= 'z' || w[i] >= 'A' && w[i] <= 'Z' || w[i] >= '0' && w[i] <= '9') {
		i++
	}
	if i >= len(w) {
		return maxv, i
	}
	switch w[i] {
	case '}':
		return maxv, i + 1
	case '/':
		i++
		if i < len(w) && (w[i] == '/' || w[i] == '#' || w[i] == '%') {
			i++
		}
		_, j := boundUntil(w, i, "/}", maxv)
		if j < len(w) && w[j] == '/' {
			j++
		}
		repl, k := boundUntil(w, j, "}", maxv)
		// Every character (and the end) may become the replacement.
		return maxv*(repl+1) + repl, k + 1
	default:
		// :-word, -word, :+word, +word, :?word, #pattern, %pattern,
		// :offset:length: the value or the word, whichever is longer.
		sub, k := boundUntil(w, i+1, "}", maxv)
		return max(maxv, sub), k + 1
	}
}
