// Package events is the contract between eft's services: the event envelope,
// the typed payloads of a run's lifecycle, the subject scheme, the train-job
// message of the work queue, and the codec that turns them into bytes and back.
//
// It depends on nothing else in eft; it is the only thing two services share
// about each other. It knows nothing about NATS either: subjects are plain
// strings here, and shared/bus moves the bytes.
//
// Events are facts in the past tense, versioned in their type name
// ("run.requested.v1"). Payloads evolve by adding optional fields only; any
// other change is a new type with the next version number (see README.md).
package events
