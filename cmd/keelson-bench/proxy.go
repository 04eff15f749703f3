package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/keelson/keelson/proxy"
)

// benchProxy prints the service proxy's sync times with 1,000 and 10,000 Services of two
// endpoints each, programmed into nftables in a private network namespace.
func benchProxy(ctx context.Context) {
	fmt.Println("\nService proxy (nftables sync; Services of 2 endpoints, 1 in 10 NodePort, 1 in 10 with ClientIP affinity)")
	if os.Getuid() != 0 {
		fmt.Println("skipped: needs root")
		return
	}
	if _, err := exec.LookPath("nft"); err != nil {
		fmt.Println("skipped: nft is not installed (apt-get install nftables)")
		return
	}
	fmt.Printf("%-9s %14s %14s %14s %8s %9s\n", "services", "initial full", "full resync", "one Service", "rules", "elements")
	for _, n := range []int{1000, 10000} {
		f, err := proxy.MeasureSync(ctx, n, 2)
		if err != nil {
			fmt.Fprintf(os.Stderr, "proxy sync with %d services: %v\n", n, err)
			return
		}
		fmt.Printf("%-9d %14v %14v %14v %8d %9d\n", n, f.Initial.Duration.Round(1e6), f.Resync.Duration.Round(1e6),
			f.Partial.Duration.Round(1e5), f.Initial.Rules, f.Initial.Elements)
	}
}
