// Command slipway ships machine-learning models to production safely.
package main

import (
	"os"

	"github.com/slipway-ml/slipway/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
