package domain

import (
	"fmt"
	"time"
)

// Version is one immutable trained artifact of a model. Its artifact digest,
// format, runtime config, lineage and registration metrics never change after
// creation; its labels and lifecycle state do.
type Version struct {
	Model  string `json:"model"`
	Number int    `json:"version"`
	// ArtifactDigest is "sha256:<hex>" of the artifact's manifest, or empty
	// for a version that carries no files (an external server).
	ArtifactDigest string             `json:"artifact_digest,omitempty"`
	ArtifactSize   int64              `json:"artifact_size"`
	ArtifactFiles  int                `json:"artifact_files"`
	Format         Format             `json:"format"`
	RuntimeConfig  map[string]string  `json:"runtime_config,omitempty"`
	Lineage        Lineage            `json:"lineage"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Labels         map[string]string  `json:"labels,omitempty"`
	State          State              `json:"state"`
	CreatedBy      string             `json:"created_by"`
	CreatedAt      time.Time          `json:"created_at"`
	// Aliases lists the aliases pointing at this version when it was read.
	Aliases []string `json:"aliases,omitempty"`
}

// ValidateNew checks a version a caller wants to register.
func (v Version) ValidateNew() error {
	if err := ValidateName("model", v.Model); err != nil {
		return err
	}
	if _, err := ParseFormat(string(v.Format)); err != nil {
		return err
	}
	if v.Format.NeedsArtifact() && v.ArtifactDigest == "" {
		return fmt.Errorf("a %s version needs an artifact (a file or directory to push): %w", v.Format, ErrInvalid)
	}
	if err := ValidateKeyValues("runtime option", v.RuntimeConfig); err != nil {
		return err
	}
	if err := v.Lineage.Validate(); err != nil {
		return err
	}
	if err := ValidateMetrics(v.Metrics); err != nil {
		return err
	}
	return ValidateKeyValues("label", v.Labels)
}

// Alias is a movable name pointing at one version of a model.
type Alias struct {
	Model     string    `json:"model"`
	Name      string    `json:"alias"`
	Version   int       `json:"version"`
	UpdatedBy string    `json:"updated_by"`
	UpdatedAt time.Time `json:"updated_at"`
}
