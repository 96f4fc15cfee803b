package image

import (
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizePlatform(t *testing.T) {
	for _, tc := range []struct{ in, want [3]string }{
		{[3]string{"linux", "x86_64", ""}, [3]string{"linux", "amd64", ""}},
		{[3]string{"linux", "aarch64", ""}, [3]string{"linux", "arm64", ""}},
		{[3]string{"linux", "arm64", "v8"}, [3]string{"linux", "arm64", ""}},
		{[3]string{"", "armhf", ""}, [3]string{runtime.GOOS, "arm", "v7"}},
		{[3]string{"linux", "armel", ""}, [3]string{"linux", "arm", "v6"}},
		{[3]string{"linux", "arm", ""}, [3]string{"linux", "arm", "v7"}},
		{[3]string{"linux", "arm", "5"}, [3]string{"linux", "arm", "v5"}},
		{[3]string{"Linux", "i386", ""}, [3]string{"linux", "386", ""}},
		{[3]string{"linux", "s390x", ""}, [3]string{"linux", "s390x", ""}},
		{[3]string{"", "", ""}, [3]string{"", "", ""}},
	} {
		var got [3]string
		got[0], got[1], got[2] = NormalizePlatform(tc.in[0], tc.in[1], tc.in[2])
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("NormalizePlatform(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
