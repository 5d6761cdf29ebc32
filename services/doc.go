// Package services is the root of eft's services (ingest, tokenizer, trainer,
// evaluator, merger, tracker) and of the eft command that runs them.
package services
