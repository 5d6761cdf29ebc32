// Package tracker is the run store: a service that consumes every event of
// EFT_EVENTS and keeps a projection of it in pebble (each run's status, its
// event timeline, its metric series), served as a JSON HTTP API.
//
// The projection and the stream position it reflects are written in one
// pebble batch, and consumption restarts right after the stored position,
// so a tracker killed at any point neither loses nor double-counts an event.
// Events are written with Sync; metric batches with NoSync (a machine crash
// loses at most the tail of the log, position included, which is replayed).
// The store can be deleted and rebuilt from the stream (Rebuild) with
// identical content: nothing in it depends on when it was written.
package tracker
