package attest

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-build/kiln/internal/image"
)

// Predicate types kiln writes.
const (
	PredicateSLSAProvenance = "https://slsa.dev/provenance/v1"
	PredicateSPDX           = "https://spdx.dev/Document"
	statementType           = "https://in-toto.io/Statement/v1"
	// PredicateTypeAnnotation names a statement layer's predicate type,
	// as BuildKit and cosign annotate them.
	PredicateTypeAnnotation = "in-toto.io/predicate-type"
)

// ResourceDescriptor is in-toto's: a thing by URI and digests.
type ResourceDescriptor struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Statement is an in-toto v1 statement about one subject.
type Statement struct {
	Type          string               `json:"_type"`
	Subject       []ResourceDescriptor `json:"subject"`
	PredicateType string               `json:"predicateType"`
	Predicate     any                  `json:"predicate"`
}

// NewStatement makes a statement about the manifest with digest d, named
// name.
func NewStatement(name string, d digest.Digest, predicateType string, predicate any) Statement {
	return Statement{
		Type:          statementType,
		Subject:       []ResourceDescriptor{{Name: name, Digest: map[string]string{d.Algorithm().String(): d.Encoded()}}},
		PredicateType: predicateType,
		Predicate:     predicate,
	}
}

// Artifact is an OCI artifact manifest and the blobs it names.
type Artifact struct {
	Manifest     []byte
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Blobs        map[digest.Digest][]byte
}

// Pack makes the artifact manifest of a statement: artifactType and the
// one layer are in-toto JSON (the layer annotated with its predicate
// type), the config is OCI's empty descriptor, and the subject is the
// image's manifest.
func Pack(s Statement, subject ocispec.Descriptor) (Artifact, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return Artifact{}, fmt.Errorf("encoding statement: %w", err)
	}
	empty := []byte("{}")
	layer := ocispec.Descriptor{
		MediaType:   image.MediaTypeInToto,
		Digest:      digest.FromBytes(body),
		Size:        int64(len(body)),
		Annotations: map[string]string{PredicateTypeAnnotation: s.PredicateType},
	}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: image.MediaTypeInToto,
		Config:       ocispec.Descriptor{MediaType: image.MediaTypeOCIEmpty, Digest: digest.FromBytes(empty), Size: 2, Data: empty},
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations:  map[string]string{PredicateTypeAnnotation: s.PredicateType},
	}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return Artifact{}, err
	}
	return Artifact{
		Manifest: raw, Digest: digest.FromBytes(raw), MediaType: m.MediaType, ArtifactType: m.ArtifactType,
		Blobs: map[digest.Digest][]byte{m.Config.Digest: empty, layer.Digest: body},
	}, nil
}

// Unpack returns the statement of an artifact Pack made (its layer).
func Unpack(manifest []byte, blobs map[digest.Digest][]byte) (Statement, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return Statement{}, fmt.Errorf("parsing attestation manifest: %w", err)
	}
	for _, l := range m.Layers {
		if l.MediaType != image.MediaTypeInToto {
			continue
		}
		var s Statement
		if err := json.Unmarshal(blobs[l.Digest], &s); err != nil {
			return Statement{}, fmt.Errorf("parsing statement %s: %w", l.Digest, err)
		}
		return s, nil
	}
	return Statement{}, fmt.Errorf("the attestation manifest has no in-toto layer")
}
