package events

import (
	"fmt"
	"strings"
)

// Subject scheme. Every run event is published on
//
//	eft.run.<run_id>.<event type>      e.g. eft.run.01J9Z….run.requested.v1
//
// so one run's events are "eft.run.<run_id>.>", one type across runs is
// "eft.run.*.<event type>", and everything is AllRunEvents. Train jobs go to
// the work queue on "eft.jobs.train.<run_id>", or "eft.jobs.pool.<pool>.<run_id>"
// for a run that asks for a trainer pool (the two never overlap: a work-queue
// stream needs its consumers' filters disjoint); messages that failed every
// retry are copied to "eft.dlq.<consumer>".
const (
	SubjectRoot  = "eft.run"
	AllRunEvents = "eft.run.>"
	JobsRoot     = "eft.jobs"
	AllJobs      = "eft.jobs.>"
	TrainJobs    = "eft.jobs.train.>"
	DeadLetters  = "eft.dlq.>"
)

// Subject is the subject of an event of type eventType for runID.
func Subject(runID, eventType string) string {
	return SubjectRoot + "." + runID + "." + eventType
}

// RunSubjects is the filter that matches every event of runID.
func RunSubjects(runID string) string { return SubjectRoot + "." + runID + ".>" }

// TypeSubjects is the filter that matches events of eventType for every run.
func TypeSubjects(eventType string) string { return SubjectRoot + ".*." + eventType }

// JobSubject is the work-queue subject of runID's train job.
func JobSubject(runID string) string { return JobsRoot + ".train." + runID }

// PoolJobSubject is the work-queue subject of runID's train job when the run
// asks for a trainer of pool; an empty pool is JobSubject.
func PoolJobSubject(pool, runID string) string {
	if pool == "" {
		return JobSubject(runID)
	}
	return JobsRoot + ".pool." + pool + "." + runID
}

// PoolTrainJobs is the filter of pool's train jobs (TrainJobs for "").
func PoolTrainJobs(pool string) string {
	if pool == "" {
		return TrainJobs
	}
	return JobsRoot + ".pool." + pool + ".*"
}

// DeadLetterSubject is where a consumer's messages go after their last failed attempt.
func DeadLetterSubject(consumer string) string { return "eft.dlq." + consumer }

// ParseSubject splits a run-event subject into its run id and event type.
func ParseSubject(subject string) (runID, eventType string, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectRoot+".")
	if !ok {
		return "", "", fmt.Errorf("events: subject %q does not start with %q", subject, SubjectRoot+".")
	}
	runID, eventType, ok = strings.Cut(rest, ".")
	if !ok || !ValidRunID(runID) || !typePattern.MatchString(eventType) {
		return "", "", fmt.Errorf("events: subject %q is not eft.run.<run_id>.<event type>", subject)
	}
	return runID, eventType, nil
}
