// Package benchrun measures benchmark cases the benchmarks/CASES.md way
// and writes their result file. Shared by the Go benchmark
// (internal/cmd/hmsbench) and the remote one (internal/cmd/remotebench, a
// module of its own so that this module does not depend on nats.go).
package benchrun

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Case is one entry of "cases" in the result file.
type Case struct {
	ID         string  `json:"id"`
	Label      string  `json:"label"`
	MedianNs   float64 `json:"median_ns"`
	Q1Ns       float64 `json:"q1_ns"`
	Q3Ns       float64 `json:"q3_ns"`
	Rounds     int     `json:"rounds"`
	Iterations int     `json:"iterations"`
	Baseline   *string `json:"baseline"`
}

// Memory is one entry of "memory".
type Memory struct {
	ID           string `json:"id"`
	Label        string `json:"label"`
	Calls        int    `json:"calls"`
	RSSBeforeKiB int64  `json:"rss_before_kib"`
	RSSAfterKiB  int64  `json:"rss_after_kib"`
}

// Result is the whole file.
type Result struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Notes    []string `json:"notes"`
	Cases    []Case   `json:"cases"`
	Memory   []Memory `json:"memory"`
}

// Bench is a case being measured: Run does n operations, each of PerOp
// calls (0 counts as 1); Check asserts the answer once, outside the timed
// loop (nil: Run asserts its own).
type Bench struct {
	ID, Label, Baseline string
	PerOp               int
	Run                 func(n int) error
	Check               func() error

	Iterations int
	PerCall    []float64
}

// Measure checks every case, sizes its rounds to about roundTime, runs its
// warm-up round, then runs `rounds` rounds of all cases interleaved (round
// r of every case before round r+1 of any), so a case and its baseline see
// the same machine load.
func Measure(benches []*Bench, rounds int, roundTime time.Duration) error {
	for _, b := range benches {
		if b.PerOp == 0 {
			b.PerOp = 1
		}
		if b.Check != nil {
			if err := b.Check(); err != nil {
				return fmt.Errorf("%s: %w", b.ID, err)
			}
		}
		var err error
		if b.Iterations, err = calibrate(b.Run, roundTime); err != nil {
			return fmt.Errorf("%s: %w", b.ID, err)
		}
		if err := b.Run(b.Iterations); err != nil { // the warm-up round
			return fmt.Errorf("%s: %w", b.ID, err)
		}
	}
	for r := 0; r < rounds; r++ {
		for _, b := range benches {
			start := time.Now()
			if err := b.Run(b.Iterations); err != nil {
				return fmt.Errorf("%s: %w", b.ID, err)
			}
			el := time.Since(start)
			b.PerCall = append(b.PerCall, float64(el.Nanoseconds())/float64(b.Iterations*b.PerOp))
		}
	}
	return nil
}

// Cases are the measured benches as result-file entries.
func Cases(benches []*Bench) []Case {
	cases := make([]Case, 0, len(benches))
	for _, b := range benches {
		q1, med, q3 := quartiles(b.PerCall)
		c := Case{ID: b.ID, Label: b.Label, MedianNs: Round2(med), Q1Ns: Round2(q1), Q3Ns: Round2(q3),
			Rounds: len(b.PerCall), Iterations: b.Iterations}
		if b.Baseline != "" {
			baseline := b.Baseline
			c.Baseline = &baseline
		}
		cases = append(cases, c)
	}
	return cases
}

// Write writes res as JSON to out, making its folder.
func Write(out string, res Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", out)
	return nil
}

// calibrate sizes a round so that it lasts about target.
func calibrate(op func(n int) error, target time.Duration) (int, error) {
	n := 1
	for {
		start := time.Now()
		if err := op(n); err != nil {
			return 0, err
		}
		el := time.Since(start)
		if el >= target/5 || n >= 1<<30 {
			it := int(float64(n) * float64(target) / float64(max(el, time.Microsecond)))
			return max(it, 1), nil
		}
		n *= 4
	}
}

// quartiles: first quartile, median and third quartile of xs, by linear
// interpolation between the closest ranks.
func quartiles(xs []float64) (q1, med, q3 float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(p float64) float64 {
		if len(s) == 0 {
			return 0
		}
		pos := p * float64(len(s)-1)
		lo := int(pos)
		if lo+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
	}
	return at(0.25), at(0.5), at(0.75)
}

// Round2 rounds to two decimals, as the result files give figures.
func Round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
