package proxy

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// BenchmarkSync prints the sync times with 1,000 and 10,000 Services of two endpoints.
func BenchmarkSync(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root (nftables in a private network namespace)")
	}
	for _, n := range benchSizes() {
		figs, err := MeasureSync(context.Background(), n, 2)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("%d services: initial full sync %v (%d rules, %d elements), full resync %v, one-service sync %v (%d rules)",
			n, figs.Initial.Duration, figs.Initial.Rules, figs.Initial.Elements, figs.Resync.Duration, figs.Partial.Duration, figs.Partial.Rules)
	}
}

func benchSizes() []int {
	if n, err := strconv.Atoi(os.Getenv("KEELSON_PROXY_BENCH_N")); err == nil {
		return []int{n}
	}
	return []int{1000, 10000}
}
