package events

import (
	"strings"
	"testing"
)

// A run that asks for a trainer pool is queued where only that pool's
// trainers look, and the pools' filters never overlap the default one (a
// work-queue stream refuses consumers whose filters overlap).
func TestTrainJobsOfAPoolGoToThePoolSubject(t *testing.T) {
	job := TrainJob{Config: "c", Train: testRef, Format: "f", MicroBatches: 1, SequenceLen: 8, MicroBatchSize: 1, Pool: "h100"}
	env, err := New("01J9ZRUN", "test", job)
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Subject(); got != "eft.jobs.pool.h100.01J9ZRUN" {
		t.Fatalf("pooled job subject %q", got)
	}
	if got := PoolTrainJobs("h100"); got != "eft.jobs.pool.h100.*" {
		t.Fatalf("pool filter %q", got)
	}
	if PoolTrainJobs("") != TrainJobs || PoolJobSubject("", "r1") != JobSubject("r1") {
		t.Fatal("the empty pool is not the default queue")
	}
	for _, f := range []string{PoolTrainJobs("h100"), PoolTrainJobs("a100")} {
		if strings.HasPrefix(f, strings.TrimSuffix(TrainJobs, ">")) {
			t.Fatalf("pool filter %s overlaps %s", f, TrainJobs)
		}
	}
	// Decoded again (a trainer reading it), the pool survives.
	data, err := Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := PayloadAs[TrainJob](back); err != nil || p.Pool != "h100" || back.Subject() != env.Subject() {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	job.Pool = "h100.>"
	if _, err := New("01J9ZRUN", "test", job); err == nil || !strings.Contains(err.Error(), "pool") {
		t.Fatalf("a pool with subject wildcards was accepted: %v", err)
	}
}
