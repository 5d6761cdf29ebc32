// Package shared is the root of eft's platform code. The packages below it own
// the bus (watermill + NATS JetStream), artifacts (JetStream Object Store),
// configuration, telemetry and Hugging Face formats; this package itself holds
// nothing.
package shared
