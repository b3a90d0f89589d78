package layout

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/slipway-ml/slipway/"

// order is the package map of DESIGN.md, top to bottom: a package may
// import only packages listed before it.
var order = []string{
	"examples/breast-cancer", // the example's models and data, embedded for slipway demo
	"internal/domain",
	"internal/clock",
	"internal/requestid",
	"internal/logbuf",   // batched log output for the server
	"internal/logtest",  // a log destination tests read while others write
	"internal/otlptest", // a loopback OTLP receiver that tests import
	"internal/audit",
	"internal/yamldoc",
	"internal/analysis",
	"internal/analysis/promprov", // queries a real Prometheus over HTTP (not pure)
	"internal/drift",
	"internal/rollout",
	"internal/store",
	"internal/store/sqlstore",
	"internal/store/storetest",
	"internal/artifact",
	"internal/auth",
	"internal/dataset",
	"internal/registry",
	"internal/runtime/egress",
	"internal/runtime/oip",
	"internal/runtime",
	"internal/runtime/xgboost",
	"internal/runtime/process",
	"internal/runtime/external",
	"internal/runtime/fleet",
	"internal/notify",
	"internal/deployment",
	"internal/evaluation",
	"internal/evalrun",
	"internal/gate",
	"internal/metrics",
	"internal/gateway",
	"internal/controller",
	"internal/api",
	"internal/api/apitest", // a real API server on loopback that tests of api, apiclient and cli start
	"internal/apiclient",
	"internal/cli",
	"internal/ui",
	"internal/app",
	"cmd/slipway",
}

// pure packages: no sockets, no SQL, no stores, no files of their own.
var pure = []string{"internal/domain", "internal/clock", "internal/audit", "internal/analysis", "internal/drift", "internal/rollout", "internal/evaluation", "internal/yamldoc"}

var impure = []string{"net", "net/http", "database/sql", "os/exec"}

func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s", dir)
	}
	return dir
}

// packages lists every package directory under internal/ and cmd/.
func packages(t *testing.T, rootDir string) map[string]*build.Package {
	t.Helper()
	out := map[string]*build.Package{}
	for _, top := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(rootDir, top), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() || d.Name() == "testdata" {
				if d != nil && d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return err
			}
			pkg, err := build.ImportDir(p, 0)
			if err != nil {
				return nil // no non-test Go files here
			}
			rel, _ := filepath.Rel(rootDir, p)
			out[filepath.ToSlash(rel)] = pkg
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestPackagesImportOnlyWhatIsAboveThem(t *testing.T) {
	pkgs := packages(t, root(t))
	for rel, pkg := range pkgs {
		if rel == "internal/layout" || strings.HasPrefix(rel, "internal/e2e") {
			continue
		}
		pos := slices.Index(order, rel)
		if pos < 0 {
			t.Errorf("package %s is not on the map in layout_test.go (and DESIGN.md); place it", rel)
			continue
		}
		for _, imp := range pkg.Imports {
			dep, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if dpos := slices.Index(order, dep); dpos < 0 || dpos >= pos {
				t.Errorf("%s imports %s, which is not above it on the map", rel, dep)
			}
		}
	}
}

func TestPurePackagesStayPure(t *testing.T) {
	pkgs := packages(t, root(t))
	for _, rel := range pure {
		pkg, ok := pkgs[rel]
		if !ok {
			continue // not grown yet
		}
		imports := append(append([]string{}, pkg.Imports...), pkg.TestImports...)
		for _, imp := range imports {
			if slices.Contains(impure, imp) {
				t.Errorf("pure package %s imports %s", rel, imp)
			}
			if dep, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(pure, dep) {
				t.Errorf("pure package %s imports %s, which is not pure", rel, dep)
			}
		}
	}
}
