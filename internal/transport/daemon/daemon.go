// Package daemon moves images in and out of a Docker Engine
// (docker-daemon:NAME:TAG) through its HTTP API over a unix socket or TCP:
// writing streams a docker-archive to POST /images/load, reading saves
// GET /images/NAME/get into a temporary docker-archive and reads that.
package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/kiln-build/kiln/internal/transport/dockerarchive"
)

// DefaultHost is the Docker Engine address used when none is given.
const DefaultHost = "unix:///var/run/docker.sock"

// Client talks to one Docker Engine.
type Client struct {
	http *http.Client
	base string
	host string
}

// NewClient returns a client for host: unix:///path, tcp://HOST:PORT or
// http://HOST:PORT; empty means DefaultHost. TLS (DOCKER_TLS_VERIFY) is not
// supported.
func NewClient(host string) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parsing docker host %q: %w", host, err)
	}
	tr := &http.Transport{}
	base := ""
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://docker"
	case "tcp", "http":
		base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: unsupported scheme %q", host, u.Scheme)
	}
	return &Client{http: &http.Client{Transport: tr}, base: base, host: host}, nil
}

// Load streams a docker-archive to the daemon and waits for it to be loaded.
func (c *Client) Load(ctx context.Context, archive io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/images/load?quiet=1", archive)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("loading image into docker daemon %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loading image into docker daemon %s: %w", c.host, apiError(resp))
	}
	// The answer is a stream of JSON messages; errors come in-band.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && (msg.Error != "" || msg.ErrorDetail.Message != "") {
			return fmt.Errorf("loading image into docker daemon %s: %s", c.host, firstNonEmpty(msg.ErrorDetail.Message, msg.Error))
		}
	}
	return sc.Err()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var msg struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &msg) == nil && msg.Message != "" {
		return fmt.Errorf("daemon answered %d: %s", resp.StatusCode, msg.Message)
	}
	return fmt.Errorf("daemon answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
}

// Save returns the docker-archive of image name (NAME:TAG or an ID).
func (c *Client) Save(ctx context.Context, name string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/images/"+url.PathEscape(name)+"/get", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("saving image %s from docker daemon %s: %w", name, c.host, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("saving image %s from docker daemon %s: %w", name, c.host, apiError(resp))
	}
	return resp.Body, nil
}

// Source reads an image saved from the daemon.
type Source struct {
	*dockerarchive.Source
	tmp string
}

// NewSource saves image name (NAME:TAG, or sha256:ID with tag "") from the
// daemon into a temporary file under tmpDir and opens it.
func NewSource(ctx context.Context, c *Client, name, tag, tmpDir string) (*Source, error) {
	rc, err := c.Save(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := os.CreateTemp(tmpDir, "kiln-docker-save-*.tar")
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("saving image %s from docker daemon: %w", name, err)
	}
	src, err := dockerarchive.NewSource(f.Name(), tag)
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("reading image %s from docker daemon: %w", name, err)
	}
	return &Source{Source: src, tmp: f.Name()}, nil
}

// Close closes and removes the temporary archive.
func (s *Source) Close() error {
	err := s.Source.Close()
	if rerr := os.Remove(s.tmp); err == nil {
		err = rerr
	}
	return err
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("connecting to docker daemon %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("connecting to docker daemon %s: %w", c.host, apiError(resp))
	}
	return nil
}

// NewDestination checks that the daemon answers and returns a
// destination that, on Commit, streams the image tagged tag to the
// daemon's /images/load. Blobs are staged under tmpDir.
func NewDestination(ctx context.Context, c *Client, tag, tmpDir string) (*dockerarchive.Destination, error) {
	if err := c.Ping(ctx); err != nil {
		return nil, err
	}
	var lp *loadPipe
	d, err := dockerarchive.NewStreamDestination([]string{tag}, tmpDir, func() (io.WriteCloser, error) {
		pr, pw := io.Pipe()
		lp = &loadPipe{pw: pw, done: make(chan struct{})}
		go func() {
			lp.err = c.Load(ctx, pr)
			pr.CloseWithError(lp.err)
			close(lp.done)
		}()
		return lp, nil
	})
	if err != nil {
		return nil, err
	}
	d.SetDone(func() error { <-lp.done; return lp.err })
	return d, nil
}

// loadPipe is the archive stream to /images/load. When a write fails
// because the load failed, the load's error (the cause) is returned.
type loadPipe struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // set before done is closed
}

func (l *loadPipe) Write(b []byte) (int, error) {
	n, err := l.pw.Write(b)
	if err != nil {
		<-l.done
		if l.err != nil {
			return n, l.err
		}
	}
	return n, err
}

func (l *loadPipe) Close() error { return l.pw.Close() }
