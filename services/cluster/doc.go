// Package cluster tests eft as it is deployed: every service a separate
// `eft serve` process (the real binary, built once per test run) against an
// `eft serve nats` process with authentication on, exchanging real events
// over a real JetStream file store. It holds no production code, only the
// scaling, fault and load tests of docs/deploy.md:
//
//   - trainer pools and the work queue spread over several trainer processes;
//   - faults: the NATS server restarted mid-run, the tracker SIGKILLed
//     mid-run, a poison message, a full disk while checkpointing;
//   - load: many concurrent runs through three trainers, with throughput and
//     event latency figures.
//
// Every wait is bounded; a test that cannot build the binary fails.
package cluster
