// Package events is the contract between eft's services: the event envelope,
// the typed payloads of a run's lifecycle, the subject scheme and the codec.
// It depends on nothing else in eft; it is the only thing two services share
// about each other.
package events
