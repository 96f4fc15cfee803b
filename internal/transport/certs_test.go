package transport

import (
	"testing"

	"github.com/kiln-build/kiln/internal/transport/transporttest"
)

// makeCerts returns a self-signed CA and a server certificate for
// 127.0.0.1 and localhost signed by it, PEM encoded.
func makeCerts(t *testing.T) (caPEM, certPEM, keyPEM []byte) { return transporttest.MakeCerts(t) }
