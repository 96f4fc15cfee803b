package image

import (
	"runtime"
	"strings"
)

// NormalizePlatform spells a platform the way image indexes do, as
// containerd's platforms.Normalize (which Buildah uses) does: "x86_64"
// is amd64, "aarch64" arm64 (its "v8" variant implied), "armhf" arm v7,
// "armel" arm v6, a bare "arm" v7, "i386" 386. Empty fields stay empty
// except that an empty OS with an architecture is this machine's OS.
func NormalizePlatform(os, arch, variant string) (string, string, string) {
	os = strings.ToLower(os)
	if os == "macos" {
		os = "darwin"
	}
	if os == "" && arch != "" {
		os = runtime.GOOS
	}
	switch strings.ToLower(arch) {
	case "i386":
		arch, variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		if variant == "8" || variant == "v8" {
			variant = ""
		}
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	}
	return os, arch, variant
}
