package driver

import (
	"fmt"

	units "github.com/docker/go-units"
)

// SizeOption parses the per-container size limit, the "size" option
// ("10G", "512m", "1.5GiB"; binary units). It returns 0 when the option
// is not set. Drivers that can enforce a limit read it with this, and
// drivers that cannot refuse a non-zero one with ErrUnsupported.
func SizeOption(o Options) (uint64, error) {
	v := o.Opts["size"]
	if v == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size option %q: want a size such as 10G", v)
	}
	return uint64(n), nil
}
