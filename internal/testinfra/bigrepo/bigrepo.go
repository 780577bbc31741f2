// Package bigrepo generates a deterministic repository shaped like a
// mid-sized web app (the reference: 24 MB in about 1,900 files):
// mostly small source files that compress well, plus a few large binary
// assets that do not. Benchmarks of cloning and of whole builds use it, so
// runs on different days compare the same work.
package bigrepo

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// Shape says how big the repository is.
type Shape struct {
	Files      int   // total number of files
	Assets     int   // how many of them are incompressible binary assets
	TotalBytes int64 // approximate total size
}

// Reference is the repository of the measurement.
var Reference = Shape{Files: 1900, Assets: 60, TotalBytes: 24 << 20}

// Dockerfile copies the whole tree onto base, as an app's build does
// before installing anything.
func Dockerfile(base string) string {
	return "FROM " + base + "\nWORKDIR /app\nCOPY . .\nRUN du -sk /app > /size.txt\n"
}

// Files generates the tree with seed; different seeds give different
// content of the same shape. The Dockerfile at the root builds it on base.
func Files(s Shape, seed uint64, base string) map[string]gitserver.File {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	files := make(map[string]gitserver.File, s.Files)
	files["Dockerfile"] = gitserver.Text(Dockerfile(base))
	// Assets take a bit over half the bytes, as images and fonts do in a
	// web app's public directory.
	assetBytes := s.TotalBytes * 55 / 100
	textFiles := s.Files - s.Assets - 1
	textAvg := int((s.TotalBytes - assetBytes) / int64(textFiles))
	for i := 0; i < s.Assets; i++ {
		b := make([]byte, assetBytes/int64(s.Assets))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		files[fmt.Sprintf("public/assets/img-%03d.bin", i)] = gitserver.File{Content: string(b), Mode: 0o644}
	}
	dirs := []string{"src/components", "src/pages", "src/lib", "src/styles", "src/api", "test", "docs", "scripts"}
	for i := 0; i < textFiles; i++ {
		dir := dirs[i%len(dirs)]
		sub := fmt.Sprintf("%s/m%02d", dir, (i/len(dirs))%24)
		size := textAvg/2 + rng.IntN(textAvg)
		files[fmt.Sprintf("%s/file%04d.ts", sub, i)] = gitserver.Text(source(rng, size))
	}
	return files
}

var words = strings.Fields(`const let function return import export from default async await
if else for while switch case break continue new this class extends interface type
string number boolean undefined null true false props state render component value
index length map filter reduce push slice splice request response handler error data`)

// source is text that compresses like code does (about 4x).
func source(rng *rand.Rand, size int) string {
	var b strings.Builder
	b.Grow(size + 64)
	for b.Len() < size {
		n := 3 + rng.IntN(9)
		b.WriteString(strings.Repeat("  ", rng.IntN(4)))
		for j := 0; j < n; j++ {
			b.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(5) == 0 {
				fmt.Fprintf(&b, "%d", rng.IntN(10000))
			}
			b.WriteByte(' ')
		}
		b.WriteString(";\n")
	}
	return b.String()
}
