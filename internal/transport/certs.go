package transport

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultCertsDirs are searched for HOST[:PORT]/ directories of CA
// certificates (*.crt) and client certificates (*.cert with *.key).
var DefaultCertsDirs = []string{"/etc/containers/certs.d", "/etc/docker/certs.d"}

// TLSConfig returns the TLS configuration for host (host[:port]): the
// system roots plus the certs.d CAs, client certificates, and verification
// turned off when sys.TLSVerify is false or registries.conf says insecure.
func TLSConfig(host string, sys *SystemContext) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if !tlsVerify(host, sys) {
		cfg.InsecureSkipVerify = true
	}
	dirs := DefaultCertsDirs
	if sys != nil && len(sys.CertsDirs) > 0 {
		dirs = sys.CertsDirs
	}
	var paths []string
	if sys != nil && sys.CertDir != "" {
		paths = []string{sys.CertDir}
	} else {
		for _, d := range dirs {
			paths = append(paths, filepath.Join(d, host))
		}
	}
	for _, p := range paths {
		if err := loadCertDir(cfg, p); err != nil {
			return nil, fmt.Errorf("loading certificates for %s from %s: %w", host, p, err)
		}
	}
	return cfg, nil
}

func loadCertDir(cfg *tls.Config, dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			pem, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("no certificate in %s", p)
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			cert, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return err
			}
			cfg.Certificates = append(cfg.Certificates, cert)
		}
	}
	return nil
}

// tlsVerify decides whether TLS is verified for host.
func tlsVerify(host string, sys *SystemContext) bool {
	if sys != nil && sys.TLSVerify != nil {
		return *sys.TLSVerify
	}
	return !insecureInConf(host, sys)
}

func insecureInConf(host string, sys *SystemContext) bool {
	conf, err := LoadRegistriesConf(sys)
	if err != nil {
		return false
	}
	r := conf.FindRegistry(host)
	return r != nil && r.Insecure
}

// httpTransport returns the base transport for host.
func httpTransport(host string, sys *SystemContext) (http.RoundTripper, error) {
	cfg, err := TLSConfig(host, sys)
	if err != nil {
		return nil, err
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return t, nil
}

// registryOpts returns the name options for host: name.Insecure (plain
// HTTP allowed) when TLS verification is off.
func registryOpts(host string, sys *SystemContext) []name.Option {
	if !tlsVerify(host, sys) {
		return []name.Option{name.Insecure}
	}
	return nil
}
