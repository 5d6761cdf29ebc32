// Package bus moves eft's events over NATS JetStream with watermill: an
// embedded server or a connection to an external one, provisioning of the
// streams (EFT_EVENTS, the log of record; EFT_JOBS, the train-job work queue;
// EFT_DLQ, dead letters) and of durable consumers, publishing with
// Nats-Msg-Id = event id, and consuming through middleware written once here:
// panic recovery, retries with exponential backoff, a dead-letter subject,
// and OpenTelemetry trace propagation through message headers.
//
// It owns transport only. What an event means is package events'; what a
// service does with it is the service's. Bulk data goes through package
// artifacts, never through events.
package bus
