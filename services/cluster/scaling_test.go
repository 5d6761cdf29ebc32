package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eftml/eft/events"
)

// interval is when one trainer trained one run, by the events' own times.
type interval struct {
	run, worker string
	from, to    time.Time
}

// trainedBy reads who trained a finished run and when: from its (last)
// TrainingStarted to its TrainingCompleted.
func trainedBy(t *testing.T, runID string, envs []events.Envelope) interval {
	t.Helper()
	iv := interval{run: runID}
	for _, e := range envs {
		switch e.Type {
		case events.TypeTrainingStarted:
			p, err := events.PayloadAs[events.TrainingStarted](e)
			if err != nil {
				t.Fatal(err)
			}
			iv.worker, iv.from = p.Worker, e.Time
		case events.TypeTrainingCompleted:
			iv.to = e.Time
		}
	}
	return iv
}

// Three trainer processes share one work queue: six runs all complete, each
// trainer trains at least one and never two at once, and they train in
// parallel. A fourth trainer serves pool h100: it takes the one run that
// asks for that pool and nothing else, and no default trainer takes it.
func TestTrainersShareTheQueueAndPoolsRouteRuns(t *testing.T) {
	c := newCluster(t)
	c.serve("stages", "tracker", "validate", "ingest", "tokenizer", "--http", "127.0.0.1:0")
	var trainers []*proc
	for i := range 3 {
		trainers = append(trainers, c.serve(fmt.Sprintf("trainer%d", i), "trainer"))
	}
	h100 := c.serve("trainer-h100", "trainer", "--pool", "h100")

	start := time.Now()
	var runs []string
	for i := range 6 {
		runs = append(runs, c.submit(tinyRun{Steps: 40, Seed: i + 1}))
	}
	pooled := c.submit(tinyRun{Steps: 10, Seed: 99, Pool: "h100"})

	ivs := make([]interval, len(runs))
	var wg sync.WaitGroup
	for i, id := range runs {
		wg.Go(func() {
			envs := c.follow(id, 3*time.Minute)
			completed(t, id, envs)
			ivs[i] = trainedBy(t, id, envs)
		})
	}
	pooledEnvs := c.follow(pooled, 3*time.Minute)
	wg.Wait()
	if t.Failed() {
		return
	}
	wall := time.Since(start)
	completed(t, pooled, pooledEnvs)
	if got := trainedBy(t, pooled, pooledEnvs).worker; got != h100.worker() {
		t.Fatalf("the h100 run was trained by %s, not the h100 trainer %s", got, h100.worker())
	}

	perWorker := map[string][]interval{}
	for _, iv := range ivs {
		perWorker[iv.worker] = append(perWorker[iv.worker], iv)
	}
	for _, tr := range trainers {
		mine := perWorker[tr.worker()]
		if len(mine) == 0 || len(mine) > 3 {
			t.Errorf("trainer %s trained %d of the 6 runs; a fair spread is 1 to 3", tr.worker(), len(mine))
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i].from.Before(mine[j].from) })
		for k := 1; k < len(mine); k++ {
			if mine[k].from.Before(mine[k-1].to) {
				t.Errorf("trainer %s trained runs %s and %s at once", tr.worker(), mine[k-1].run, mine[k].run)
			}
		}
		delete(perWorker, tr.worker())
	}
	if len(perWorker) != 0 {
		t.Errorf("runs trained by other workers (the pool trainer took default runs?): %v", perWorker)
	}
	counts := []int{}
	for _, tr := range trainers {
		n := 0
		for _, iv := range ivs {
			if iv.worker == tr.worker() {
				n++
			}
		}
		counts = append(counts, n)
	}
	t.Logf("6 runs (+1 pooled) in %s; runs per trainer %v; at most %d trained at once", wall.Round(time.Millisecond), counts, maxOverlap(ivs))
	if maxOverlap(ivs) < 2 {
		t.Errorf("the trainers never trained in parallel")
	}
}

// maxOverlap is the largest number of intervals that cover one instant.
func maxOverlap(ivs []interval) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, iv := range ivs {
		edges = append(edges, edge{iv.from, 1}, edge{iv.to, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends before starts at the same instant
	})
	n, best := 0, 0
	for _, e := range edges {
		n += e.delta
		best = max(best, n)
	}
	return best
}

// `eft train` runs every service in one process: its trainer serves the
// config's trainer_pool, or a pooled run would wait in the queue forever.
func TestAllInOneTrainServesTheConfigsPool(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "pooled.yml")
	yaml := strings.Replace(tinyRun{Steps: 3, Seed: 2, Pool: "laptop"}.yaml(t), "output_dir: ./out", "output_dir: "+filepath.Join(dir, "out"), 1)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, eftBin, "--home", filepath.Join(dir, "home"), "train", cfg)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "completed  3 steps") {
		t.Fatalf("eft train with trainer_pool: %v\n%s", err, out)
	}
}
