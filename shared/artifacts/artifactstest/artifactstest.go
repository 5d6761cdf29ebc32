// Package artifactstest opens the object store on a test's bus, failing the
// test when it cannot.
package artifactstest

import (
	"testing"

	"github.com/eftml/eft/shared/artifacts"
	"github.com/nats-io/nats.go/jetstream"
)

// Open opens the store's bucket ("" for the default) over js.
func Open(t testing.TB, js jetstream.JetStream, bucket string) *artifacts.Store {
	t.Helper()
	s, err := artifacts.Open(t.Context(), js, bucket, artifacts.Options{})
	if err != nil {
		t.Fatalf("artifactstest: %v", err)
	}
	return s
}
