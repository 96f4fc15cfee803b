package run

import "path/filepath"

// RuntimeName returns the name of the OCI runtime the oci isolation runs
// when none is named ("runc", or crun when only it is installed), or ""
// when there is none: what Buildah reports as the host's OCIRuntime.
func RuntimeName() string {
	rt, err := findRuntime("", Options{})
	if err != nil {
		if rt, err = findRuntime("crun", Options{}); err != nil {
			return ""
		}
	}
	return filepath.Base(rt)
}
