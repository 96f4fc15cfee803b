package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/opencontainers/go-digest"
)

// BuildType is the SLSA build type of a kiln build.
const BuildType = "https://github.com/kiln-build/kiln/build@v1"

// maxContextFiles bounds the context files listed one by one; a larger
// context is named by its tree digest alone.
const maxContextFiles = 1000

// Base is a base image a build resolved: the reference a FROM named and
// the manifest digest it was resolved to.
type Base struct {
	Ref    string
	Digest digest.Digest
}

// ProvenanceInput is what a build knows about itself.
type ProvenanceInput struct {
	// BuilderID names the builder (kiln and its version).
	BuilderID string
	// Dockerfile is the Dockerfile's content; DockerfileName its name.
	Dockerfile     []byte
	DockerfileName string
	// ContextDir is the build context, whose files are materials.
	ContextDir string
	// Args are the build arguments; Target, Platform what was built.
	Args             map[string]string
	Target, Platform string
	// Bases are the base images as resolved.
	Bases []Base
	// Started and Finished bound the build.
	Started, Finished time.Time
}

// SLSA v1 provenance, as much of it as kiln fills in.
type (
	provenance struct {
		BuildDefinition buildDefinition `json:"buildDefinition"`
		RunDetails      runDetails      `json:"runDetails"`
	}
	buildDefinition struct {
		BuildType            string               `json:"buildType"`
		ExternalParameters   map[string]any       `json:"externalParameters"`
		ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
	}
	runDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata struct {
			StartedOn  string `json:"startedOn,omitempty"`
			FinishedOn string `json:"finishedOn,omitempty"`
		} `json:"metadata"`
	}
)

// Provenance returns the SLSA v1 provenance statement about the image
// whose manifest is subject (named name): external parameters (the
// Dockerfile's name, the args, target and platform) and resolved
// dependencies: the Dockerfile by digest, each base image by digest,
// the context (a tree digest, and its files one by one when they are
// few) and the remote sources of ADD (URLs and git repositories, with
// their --checksum when given).
func Provenance(name string, subject digest.Digest, in ProvenanceInput) (Statement, error) {
	var p provenance
	p.BuildDefinition.BuildType = BuildType
	params := map[string]any{"dockerfile": in.DockerfileName}
	if len(in.Args) > 0 {
		params["buildArgs"] = in.Args
	}
	if in.Target != "" {
		params["target"] = in.Target
	}
	if in.Platform != "" {
		params["platform"] = in.Platform
	}
	p.BuildDefinition.ExternalParameters = params
	deps := []ResourceDescriptor{{Name: "dockerfile", URI: in.DockerfileName, Digest: sha(in.Dockerfile)}}
	for _, b := range in.Bases {
		deps = append(deps, ResourceDescriptor{Name: "base image", URI: "pkg:docker/" + b.Ref, Digest: map[string]string{b.Digest.Algorithm().String(): b.Digest.Encoded()}})
	}
	if in.ContextDir != "" {
		ctx, err := contextMaterials(in.ContextDir)
		if err != nil {
			return Statement{}, err
		}
		deps = append(deps, ctx...)
	}
	remote, err := RemoteSources(in.Dockerfile)
	if err != nil {
		return Statement{}, err
	}
	p.BuildDefinition.ResolvedDependencies = append(deps, remote...)
	p.RunDetails.Builder.ID = in.BuilderID
	if !in.Started.IsZero() {
		p.RunDetails.Metadata.StartedOn = in.Started.UTC().Format(time.RFC3339)
		p.RunDetails.Metadata.FinishedOn = in.Finished.UTC().Format(time.RFC3339)
	}
	return NewStatement(name, subject, PredicateSLSAProvenance, p), nil
}

func sha(b []byte) map[string]string {
	s := sha256.Sum256(b)
	return map[string]string{"sha256": hex.EncodeToString(s[:])}
}

// contextMaterials lists the regular files of the context with their
// digests (when there are at most maxContextFiles) and the context's
// tree digest: the SHA-256 of "PATH\x00HEX\n" lines in path order.
func contextMaterials(dir string) ([]ResourceDescriptor, error) {
	var files []ResourceDescriptor
	tree := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		sum := hex.EncodeToString(h.Sum(nil))
		fmt.Fprintf(tree, "%s\x00%s\n", filepath.ToSlash(rel), sum)
		files = append(files, ResourceDescriptor{URI: "context:" + filepath.ToSlash(rel), Digest: map[string]string{"sha256": sum}})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the build context: %w", err)
	}
	out := []ResourceDescriptor{{Name: "context", URI: "context:", Digest: map[string]string{"sha256": hex.EncodeToString(tree.Sum(nil))},
		Annotations: map[string]string{"files": fmt.Sprint(len(files))}}}
	if len(files) <= maxContextFiles {
		out = append(out, files...)
	}
	return out, nil
}

// RemoteSources lists the URLs and git repositories the Dockerfile's ADD
// instructions read, with the digest ADD --checksum gives.
func RemoteSources(dockerfile []byte) ([]ResourceDescriptor, error) {
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile: %w", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing the Dockerfile: %w", err)
	}
	var out []ResourceDescriptor
	seen := map[string]bool{}
	for _, st := range stages {
		for _, c := range st.Commands {
			add, ok := c.(*instructions.AddCommand)
			if !ok {
				continue
			}
			for _, src := range add.SourcePaths {
				if !isRemote(src) || seen[src] {
					continue
				}
				seen[src] = true
				rd := ResourceDescriptor{Name: "ADD", URI: src}
				if d, err := digest.Parse(add.Checksum); err == nil {
					rd.Digest = map[string]string{d.Algorithm().String(): d.Encoded()}
				}
				out = append(out, rd)
			}
		}
	}
	return out, nil
}

func isRemote(src string) bool {
	for _, p := range []string{"http://", "https://", "git@", "git://", "ssh://"} {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
}
