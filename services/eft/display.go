package main

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/eftml/eft/events"
)

// describe renders one event as the lines the CLI prints for it (train's
// live display and `eft logs` alike).
func describe(typ string, payload json.RawMessage) []string {
	env := events.Envelope{Type: typ, Payload: payload}
	p, err := events.DecodePayload(env)
	if err != nil {
		return []string{fmt.Sprintf("%-10s %s", typ, payload)}
	}
	switch p := p.(type) {
	case events.RunRequested:
		s := "requested  " + p.Config.FileName
		if len(p.Config.Overrides) > 0 {
			s += " " + strings.Join(p.Config.Overrides, " ")
		}
		return []string{s}
	case events.ConfigValidated:
		lines := []string{fmt.Sprintf("validated  config ok, %d warning(s)", len(p.Warnings))}
		for _, w := range p.Warnings {
			lines = append(lines, "  warning: "+w.String())
		}
		return lines
	case events.DatasetIngested:
		s := fmt.Sprintf("ingested   %d rows (%d rejected)", p.Rows, p.Rejected)
		if p.TestRows > 0 {
			s = fmt.Sprintf("ingested   %d rows, %d test rows (%d rejected)", p.Rows, p.TestRows, p.Rejected)
		}
		return []string{s + cached(p.CacheHit)}
	case events.DatasetTokenized:
		s := fmt.Sprintf("tokenized  %d samples", p.Samples)
		if p.EvalSamples > 0 {
			s += fmt.Sprintf(" + %d eval", p.EvalSamples)
		}
		s += fmt.Sprintf(", %d tokens (%d trained), %d micro-batches, packing %.3f", p.Tokens, p.TrainedTokens, p.MicroBatches, p.PackingEfficiency)
		if p.Dropped > 0 || p.Duplicates > 0 {
			s += fmt.Sprintf(", %d dropped, %d duplicates", p.Dropped, p.Duplicates)
		}
		return []string{s + cached(p.CacheHit)}
	case events.TrainingStarted:
		s := fmt.Sprintf("training   %s on %s by %s, %d steps", p.Method, orDash(p.Device), p.Worker, p.TotalSteps)
		if p.ResumedFromStep > 0 {
			s += fmt.Sprintf(", resumed from step %d", p.ResumedFromStep)
		}
		return []string{s}
	case events.MetricsLogged:
		return []string{metricsLine(p, 0)}
	case events.CheckpointSaved:
		return []string{fmt.Sprintf("checkpoint %s (step %d, %d files)", p.Name, p.Step, len(p.Files))}
	case events.EvalCompleted:
		return []string{fmt.Sprintf("eval       step %d: loss %s, perplexity %s", p.Step, num(p.Loss), num(p.Perplexity))}
	case events.TrainingCompleted:
		return []string{fmt.Sprintf("completed  %d steps, final loss %s, %d files", p.Steps, num(p.FinalLoss), len(p.Files))}
	case events.ModelMerged:
		return []string{fmt.Sprintf("merged     %d files into %s", len(p.Files), p.Dir)}
	case events.RunFailed:
		lines := []string{fmt.Sprintf("FAILED     at stage %s: %s", p.Stage, firstLine(p.Error))}
		if len(p.Issues) > 0 {
			lines = lines[:1]
			lines[0] = fmt.Sprintf("FAILED     at stage %s:", p.Stage)
			for _, is := range p.Issues {
				lines = append(lines, "  "+is.String())
			}
		} else if rest := restLines(p.Error); len(rest) > 0 {
			for _, l := range rest {
				lines = append(lines, "  "+l)
			}
		}
		if p.Retryable {
			lines = append(lines, "  (retryable: running it again may succeed)")
		}
		return lines
	case events.RunCancelled:
		return []string{"cancelled  " + p.Reason}
	}
	return []string{fmt.Sprintf("%-10s %s", typ, payload)}
}

// metricsLine is "step 12/100  loss 1.2345  learning_rate 2e-04 ...", the
// well-known metrics first; total 0 leaves out "/total".
func metricsLine(m events.MetricsLogged, total int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d", m.Step)
	if total > 0 {
		fmt.Fprintf(&b, "/%d", total)
	}
	names := make([]string, 0, len(m.Values))
	for k := range m.Values {
		names = append(names, k)
	}
	order := map[string]int{"loss": 0, "learning_rate": 1, "grad_norm": 2, "tokens_per_second": 3}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if iok {
			return oi < oj
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		fmt.Fprintf(&b, "  %s %s", n, num(m.Values[n]))
	}
	return b.String()
}

func num(m events.Metric) string {
	f := float64(m)
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return fmt.Sprint(f)
	case f != 0 && (math.Abs(f) < 1e-3 || math.Abs(f) >= 1e6):
		return fmt.Sprintf("%.3e", f)
	}
	return fmt.Sprintf("%.4f", f)
}

func cached(hit bool) string {
	if hit {
		return " (cached)"
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func restLines(s string) []string {
	_, rest, ok := strings.Cut(s, "\n")
	if !ok {
		return nil
	}
	return strings.Split(rest, "\n")
}

func stamp(t time.Time) string { return t.Local().Format("15:04:05") }
