package events

import (
	"fmt"
	"regexp"
)

// ArtifactRef points at an object in the JetStream Object Store: events carry
// references to bulk data, never the data.
type ArtifactRef struct {
	Bucket string `json:"bucket"`
	Name   string `json:"name"`
	// SHA256 is the lowercase hex digest of the object's bytes.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks that every field is set and the digest is 64 hex digits.
func (a ArtifactRef) Validate() error {
	switch {
	case a.Bucket == "":
		return fmt.Errorf("artifact bucket is missing")
	case a.Name == "":
		return fmt.Errorf("artifact %s: name is missing", a.Bucket)
	case !sha256Pattern.MatchString(a.SHA256):
		return fmt.Errorf("artifact %s/%s: sha256 %q is not 64 lowercase hex digits", a.Bucket, a.Name, a.SHA256)
	case a.Size < 0:
		return fmt.Errorf("artifact %s/%s: negative size %d", a.Bucket, a.Name, a.Size)
	}
	return nil
}

// String is bucket/name, for messages.
func (a ArtifactRef) String() string { return a.Bucket + "/" + a.Name }

// FileRef is one file of a multi-file output (a checkpoint, an adapter, a
// merged model): its path relative to the output's folder and where its bytes are.
type FileRef struct {
	Path     string      `json:"path"`
	Artifact ArtifactRef `json:"artifact"`
}

func validateFiles(field string, files []FileRef, required bool) error {
	if required && len(files) == 0 {
		return fmt.Errorf("%s is empty", field)
	}
	for i, f := range files {
		if f.Path == "" {
			return fmt.Errorf("%s[%d].path is missing", field, i)
		}
		if err := f.Artifact.Validate(); err != nil {
			return fmt.Errorf("%s[%d] (%s): %w", field, i, f.Path, err)
		}
	}
	return nil
}

func validateOptionalRef(field string, ref *ArtifactRef) error {
	if ref == nil {
		return nil
	}
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}
