package image

import "testing"

func TestConvertMediaType(t *testing.T) {
	tests := []struct {
		f      Format
		in     string
		want   string
		wantOK bool
	}{
		{FormatDocker, MediaTypeOCIManifest, MediaTypeDockerManifest, true},
		{FormatDocker, MediaTypeOCIIndex, MediaTypeDockerManifestList, true},
		{FormatDocker, MediaTypeOCILayerZst, MediaTypeDockerLayerZst, true},
		{FormatDocker, MediaTypeOCINondistLayerGz, MediaTypeDockerForeignLayerGz, true},
		{FormatOCI, MediaTypeDockerConfig, MediaTypeOCIConfig, true},
		{FormatOCI, MediaTypeDockerLayerGz, MediaTypeOCILayerGz, true},
		{FormatOCI, MediaTypeOCIManifest, MediaTypeOCIManifest, false},
		{FormatDocker, MediaTypeDockerLayer, MediaTypeDockerLayer, false},
		{FormatOCI, "application/vnd.example+json", "application/vnd.example+json", false},
	}
	for _, tt := range tests {
		got, ok := tt.f.ConvertMediaType(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s.ConvertMediaType(%s) = %s, %v; want %s, %v", tt.f, tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}
