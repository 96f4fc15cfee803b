package dockerfile

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
)

// platformKey is the platform part of a step's cache key: the stage's
// platform with this machine's fields filled in, spelled as image indexes
// spell it, so that "linux/arm64" and "linux/arm64/v8" are one platform
// and a build without --platform shares its entries with one that names
// this machine's. Steps of different platforms never share an entry, even
// from the same parent (FROM scratch, or a base that is one image for
// every platform); a stage FROM --platform=$BUILDPLATFORM has this
// machine's platform whatever the target, so its steps are shared.
func platformKey(p ocispec.Platform) string {
	p = normalPlatform(p)
	goos, arch, variant := image.NormalizePlatform(p.OS, p.Architecture, p.Variant)
	return platformText(ocispec.Platform{OS: goos, Architecture: arch, Variant: variant})
}
