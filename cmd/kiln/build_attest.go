package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/internal/attest"
	"github.com/kiln-build/kiln/internal/dockerfile"
	"github.com/kiln-build/kiln/internal/images"
	"github.com/kiln-build/kiln/internal/store"
	"github.com/kiln-build/kiln/internal/transport"
)

// attestFlags are build's attestation flags.
type attestFlags struct {
	Provenance bool
	SBOM       string
}

func (a *attestFlags) add(f *pflag.FlagSet) {
	f.BoolVar(&a.Provenance, "provenance", false, "attach SLSA v1 provenance (an in-toto statement) to the image as an OCI referrer")
	f.StringVar(&a.SBOM, "sbom", "", "attach an SPDX SBOM of the packages in the image's dpkg and apk databases (kiln's own reader; scanner images are not supported)")
	f.Lookup("sbom").NoOptDefVal = "builtin"
}

// check refuses what kiln does not do before the build starts.
func (a attestFlags) check() error {
	if a.SBOM != "" && a.SBOM != "builtin" {
		return usageErrorf("--sbom %q: kiln does not run scanner images; --sbom alone writes kiln's SPDX of the dpkg and apk packages", a.SBOM)
	}
	return nil
}

// baseRecorder remembers the base images a build resolved.
type baseRecorder struct {
	mu      sync.Mutex
	bases   []attest.Base
	started time.Time
}

func newBaseRecorder() *baseRecorder { return &baseRecorder{started: time.Now()} }

type resolveFunc = func(context.Context, string, ocispec.Platform) (store.Image, error)

// wrap records each image resolve returns.
func (r *baseRecorder) wrap(resolve resolveFunc) resolveFunc {
	if resolve == nil {
		return nil
	}
	return func(ctx context.Context, ref string, p ocispec.Platform) (store.Image, error) {
		img, err := resolve(ctx, ref, p)
		if err == nil {
			r.mu.Lock()
			r.bases = append(r.bases, attest.Base{Ref: ref, Digest: img.ManifestDigest})
			r.mu.Unlock()
		}
		return img, err
	}
}

// attach stores the attestations asked for with the built image.
func (a attestFlags) attach(ctx context.Context, st *store.Store, bo dockerfile.Options, res dockerfile.Result, rec *baseRecorder) error {
	if !a.Provenance && a.SBOM == "" {
		return nil
	}
	img, err := st.Image(ctx, res.ImageID)
	if err != nil {
		return err
	}
	name := img.ID
	if len(bo.Tags) > 0 {
		name = bo.Tags[0]
	}
	builder := "https://github.com/kiln-build/kiln@" + version
	if a.Provenance {
		rec.mu.Lock()
		bases := append([]attest.Base(nil), rec.bases...)
		rec.mu.Unlock()
		platform := ""
		if bo.Platform.OS != "" {
			platform = bo.Platform.OS + "/" + bo.Platform.Architecture
		}
		s, err := attest.Provenance(name, img.ManifestDigest, attest.ProvenanceInput{
			BuilderID: builder, Dockerfile: bo.Dockerfile, DockerfileName: bo.DockerfileName, ContextDir: bo.ContextDir,
			Args: bo.Args, Target: bo.Target, Platform: platform, Bases: bases, Started: rec.started, Finished: time.Now(),
		})
		if err != nil {
			return fmt.Errorf("--provenance: %w", err)
		}
		if err := images.Attach(ctx, st, img, s); err != nil {
			return fmt.Errorf("--provenance: %w", err)
		}
	}
	if a.SBOM != "" {
		pkgs, err := images.ReadPackages(ctx, st, img)
		if err != nil {
			return fmt.Errorf("--sbom: %w", err)
		}
		created := time.Now()
		if bo.Commit.Timestamp != nil {
			created = *bo.Commit.Timestamp
		}
		if err := images.Attach(ctx, st, img, attest.SBOM(name, img.ManifestDigest, pkgs, created, "kiln-"+version)); err != nil {
			return fmt.Errorf("--sbom: %w", err)
		}
	}
	return nil
}

// printAttestations is `image inspect --attestations`: the statements
// attached to a stored image, or to an image in a registry, as JSON.
func printAttestations(cmd *cobra.Command, name string, sys *transport.SystemContext) error {
	ctx := cmd.Context()
	st, err := openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := images.Attestations(ctx, st, name, sys)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}
