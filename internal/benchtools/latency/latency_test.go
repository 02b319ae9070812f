package latency

import (
	"sync"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	var r Recorder
	if got := r.Quantile(0.99); got != 0 {
		t.Errorf("empty: %v, want 0", got)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := range 250 {
				mine = append(mine, time.Duration(1+g*250+i)) // 1..1000 across the goroutines
			}
			r.Add(mine)
		}()
	}
	wg.Wait()
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.5, 501}, {0.99, 991}, {0.999, 1000}, {1, 1000}} {
		if got := r.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}
