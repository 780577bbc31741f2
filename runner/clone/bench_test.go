package clone

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/alternatefutures/af-builder/internal/testinfra/bigrepo"
	"github.com/alternatefutures/af-builder/internal/testinfra/gitserver"
)

// BenchmarkCheckoutReference clones the reference repository (24 MB,
// 1,900 files) at a pinned SHA from a real git server, with the runner's
// go-git Checkout and, for comparison, with the git CLI doing what a shell
// pipeline would (`git fetch --depth 1 <sha>` then a checkout).
//
//	go test ./runner/clone -run '^$' -bench CheckoutReference -benchtime 5x -cpuprofile cpu.out
func BenchmarkCheckoutReference(b *testing.B) {
	srv, err := gitserver.Start(context.Background(), gitserver.Options{Token: token})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	repo, err := srv.CreateRepo("bench/reference")
	if err != nil {
		b.Fatal(err)
	}
	sha, err := repo.Commit("main", bigrepo.Files(bigrepo.Reference, 1, "busybox"), "reference")
	if err != nil {
		b.Fatal(err)
	}
	url := repo.CloneURL(token)

	b.Run("go-git", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "src")
			if _, err := Checkout(context.Background(), url, sha, dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("git-cli", func(b *testing.B) {
		if _, err := exec.LookPath("git"); err != nil {
			b.Skip("no git CLI")
		}
		for i := 0; i < b.N; i++ {
			dir := filepath.Join(b.TempDir(), "src")
			for _, args := range [][]string{
				{"init", "-q", dir},
				{"-C", dir, "fetch", "-q", "--depth", "1", "--no-tags", url, sha},
				{"-C", dir, "checkout", "-q", "FETCH_HEAD"},
			} {
				cmd := exec.Command("git", args...)
				cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "HOME="+b.TempDir())
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
		}
	})
}
