package main

import "testing"

func TestReleaseSource(t *testing.T) {
	for _, tc := range []struct{ text, mirror, suite string }{
		{"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n" +
			"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n",
			"http://deb.debian.org/debian", "bookworm"},
		{"Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: trixie-security\n\nTypes: deb\nURIs: http://m.example/debian\nSuites: trixie-updates trixie\n",
			"http://m.example/debian", "trixie"},
		{"deb http://deb.debian.org/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n",
			"http://m.example/debian", "bookworm"},
	} {
		m, s, ok := releaseSource(tc.text)
		if !ok || m != tc.mirror || s != tc.suite {
			t.Errorf("releaseSource(%q) = %q, %q, %t; want %q, %q", tc.text, m, s, ok, tc.mirror, tc.suite)
		}
	}
}
