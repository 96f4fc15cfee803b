// Package registry speaks the OCI distribution (Docker registry v2) API at
// the raw level: manifests by tag or digest exactly as stored, blob
// GET/HEAD/upload, cross-repository mounts, tag listing and deletion.
// Requests about metadata (the handshake, manifests, HEAD of a blob,
// mounts, tags) are retried a bounded number of times on 5xx answers and
// dropped connections; blob transfers (GetBlob, PutBlob) are tried once,
// because transport.Copy, the one retry layer for blobs, retries them
// whole. Authentication (basic and bearer) comes from
// go-containerregistry's transport package.
package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	gtransport "github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configure a Client.
type Options struct {
	// Auth supplies credentials; nil means anonymous.
	Auth authn.Authenticator
	// Transport is the base round tripper, carrying the TLS settings; nil
	// means a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// Retry is how many times a retryable metadata request is retried
	// (blob transfers are not); RetryDelay the first backoff, doubled each
	// time (default 1s).
	Retry      int
	RetryDelay time.Duration
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// StatusError is a registry answer with an unexpected HTTP status.
type StatusError struct {
	Method, Path string
	StatusCode   int
	Body         string
}

// Error implements error.
func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: registry answered %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// ErrNotFound reports a manifest, blob or repository the registry does not have.
var ErrNotFound = errors.New("not found in registry")

// Is matches ErrNotFound for 404 answers.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Client talks to one repository of one registry. It is safe for
// concurrent use.
type Client struct {
	repo name.Repository
	http *http.Client
	opts Options
	log  *slog.Logger
}

// NewClient pings the registry, performs the authentication handshake for
// the given actions on repo ("pull", "push") and returns a client.
func NewClient(ctx context.Context, repo name.Repository, actions []string, opts Options) (*Client, error) {
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	auth := opts.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	scopes := []string{repo.Scope(strings.Join(actions, ","))}
	c := &Client{repo: repo, opts: opts, log: log}
	var rt http.RoundTripper
	err := c.withRetry(ctx, "connecting to "+repo.RegistryStr(), func() error {
		var err error
		rt, err = gtransport.NewWithContext(ctx, repo.Registry, auth, base, scopes)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to registry %s: %w", repo.RegistryStr(), err)
	}
	c.http = &http.Client{Transport: rt}
	return c, nil
}

// Repository returns the repository the client talks to.
func (c *Client) Repository() name.Repository { return c.repo }

func (c *Client) url(kind, rest string) string {
	return fmt.Sprintf("https://%s/v2/%s/%s/%s", c.repo.RegistryStr(), c.repo.RepositoryStr(), kind, rest)
}

// request is one HTTP exchange; body is replayed on retries.
type request struct {
	method, url string
	body        []byte
	header      http.Header
	ok          []int
}

// do sends req, retrying retryable failures, and returns a response whose
// status is one of req.ok. The caller closes the body.
func (c *Client) do(ctx context.Context, req request) (*http.Response, error) {
	var resp *http.Response
	err := c.withRetry(ctx, req.method+" "+redactURL(req.url), func() error {
		var err error
		resp, err = c.once(ctx, req)
		return err
	})
	return resp, err
}

func (c *Client) once(ctx context.Context, req request) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return nil, err
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	return checkStatus(resp, req.ok)
}

func checkStatus(resp *http.Response, ok []int) (*http.Response, error) {
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return nil, &StatusError{
		Method:     resp.Request.Method,
		Path:       resp.Request.URL.Path,
		StatusCode: resp.StatusCode,
		Body:       strings.TrimSpace(string(b)),
	}
}

// withRetry runs f, retrying it with exponential backoff while it fails
// with a retryable error.
func (c *Client) withRetry(ctx context.Context, what string, f func() error) error {
	delay := c.opts.RetryDelay
	if delay <= 0 {
		delay = time.Second
	}
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || attempt >= c.opts.Retry || !Retryable(err) {
			return err
		}
		c.log.Debug("retrying", "op", what, "attempt", attempt+1, "delay", delay, "err", err)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// Retryable reports whether err is worth retrying: a 5xx or 429 answer, a
// dropped or refused connection, or a truncated body.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode >= 500 || se.StatusCode == http.StatusTooManyRequests
	}
	var ge *gtransport.Error
	if errors.As(err, &ge) {
		return ge.StatusCode >= 500 || ge.StatusCode == http.StatusTooManyRequests
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// redactURL drops the query, which may carry upload tokens.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "?"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}
