package validate_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/alternatefutures/af-builder/shared/validate"
)

// accept and refuse keep the tables below short: each row is a value and
// whether the validator must take it.
func checkAll(t *testing.T, fn func(string) error, accept, refuse []string) {
	t.Helper()
	for _, s := range accept {
		if err := fn(s); err != nil {
			t.Errorf("%q refused, want accepted: %v", s, err)
		}
	}
	for _, s := range refuse {
		if err := fn(s); err == nil {
			t.Errorf("%q accepted, want refused", s)
		} else if err.Error() == "" {
			t.Errorf("%q refused with an empty message", s)
		}
	}
}

func TestBuildJobID(t *testing.T) {
	checkAll(t, validate.BuildJobID,
		[]string{
			"a",
			"0",
			"job-123",
			"clz9x8y7w0000abcd",
			"A_b-c-D",
			"a" + strings.Repeat("b", 127), // 128: the longest allowed
		},
		[]string{
			"",
			"a" + strings.Repeat("b", 128), // 129
			"-job",                         // could be read as an option
			".job",
			"_job",
			"job/1", // would split a URL path
			"job 1",
			"job\n1",
			"job:1",
			"job%2F1",
			"jöb",
			"../etc",
			"A.b_c-D", // service-cloud-api's token verifier splits at the first '.'
			"job.1",
			"job.",
		})
	err := validate.BuildJobID("cm9.x2k")
	if err == nil || !strings.Contains(err.Error(), "'.'") || !strings.Contains(err.Error(), "token") {
		t.Errorf("a dotted id must be refused saying why (the token's '.'), got %v", err)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":          true,
		"LocalHost":          true,
		"127.0.0.1":          true,
		"127.1.2.3":          true, // all of 127/8 is loopback
		"::1":                true,
		"::ffff:127.0.0.1":   true,
		"":                   false,
		"localhost.evil.com": false,
		"evil-localhost":     false,
		"0.0.0.0":            false,
		"10.0.0.1":           false,
		"[::1]":              false, // takes a hostname, not a bracketed URL host
		"example.com":        false,
	} {
		if got := validate.IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCallbackURL(t *testing.T) {
	checkAll(t, validate.CallbackURL,
		[]string{
			"https://api.example/internal/build-callback",
			"https://api.example:8443/internal/build-callback",
			"HTTPS://api.example/x", // the scheme is case-insensitive
			"http://127.0.0.1:8080/internal/build-callback",
			"http://[::1]:8080/cb",
			"http://localhost/cb",
			"http://localhost:3000/cb",
		},
		[]string{
			"",
			"api.example/internal/build-callback", // no scheme, no host
			"/internal/build-callback",
			"http://api.example/internal/build-callback", // token in the clear
			"http://10.0.0.5/cb",
			"http://localhost.evil.com/cb",
			"ftp://api.example/cb",
			"https://user:pass@api.example/cb",
			"https://user@api.example/cb",
			"https://:8443/cb",
			"https:///cb",
			"https://api.example/cb\n",
			// A path is appended to it: after a query or fragment it is lost.
			"https://api.example?x=1",
			"https://api.example/base?x=1",
			"https://api.example/base?",
			"https://api.example/base#frag",
			"https://api.example/base#",
		})
}

func TestPlainHTTPHosts(t *testing.T) {
	hosts, err := validate.ParsePlainHTTPHosts("service-cloud-api, .svc,.svc.cluster.local API.Internal. 10.0.0.7")
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts.String(); got != "service-cloud-api,.svc,.svc.cluster.local,api.internal,10.0.0.7" {
		t.Errorf("parsed as %q", got)
	}
	check := func(u string) error { return validate.CallbackURLFor(u, hosts) }
	checkAll(t, check,
		[]string{
			"http://service-cloud-api:4000/internal/build-callback", // service-cloud-api's documented in-cluster URL
			"http://SERVICE-CLOUD-API:4000",
			"http://service-cloud-api.platform.svc:4000",
			"http://service-cloud-api.platform.svc.cluster.local:4000",
			"http://api.internal/cb",
			"http://api.internal./cb",
			"http://10.0.0.7:4000/cb",
			"http://127.0.0.1:8080/cb", // loopback stays allowed
			"https://anything.example/cb",
		},
		[]string{
			"http://service-cloud-api.evil.com/cb", // an exact name is not a prefix
			"http://evil-service-cloud-api/cb",
			"http://svc/cb", // a suffix needs a name before it
			"http://x.svc.evil.com/cb",
			"http://other-service:4000/cb", // single-label names only when listed
			"http://10.0.0.8/cb",
			"http://user:pw@service-cloud-api:4000/cb", // never credentials
			"ftp://service-cloud-api/cb",
		})
	if err := validate.CallbackURL("http://service-cloud-api:4000"); err == nil ||
		!strings.Contains(err.Error(), validate.PlainHTTPHostsVar) {
		t.Errorf("without a list, plain http to a cluster name must be refused naming %s; got %v", validate.PlainHTTPHostsVar, err)
	}
	for _, bad := range []string{"*.svc", "http://x", "x:4000", ".", "a/b", "-x"} {
		if _, err := validate.ParsePlainHTTPHosts(bad); err == nil {
			t.Errorf("ParsePlainHTTPHosts(%q) accepted, want refused", bad)
		}
	}
	if h, err := validate.ParsePlainHTTPHosts(""); err != nil || len(h) != 0 {
		t.Errorf("an empty list = %v, %v; want empty", h, err)
	}
}

const token = "ghs_Zq9SeCrEtToKeN4711"

func TestCloneURL(t *testing.T) {
	checkAll(t, validate.CloneURL,
		[]string{
			"https://x-access-token:" + token + "@github.com/octo/hello.git",
			"https://x-access-token:" + token + "@github.com/octo/hello",
			"http://x-access-token:" + token + "@127.0.0.1:9418/octo/hello.git",
			"http://x-access-token:" + token + "@localhost:8080/octo/hello.git",
			"http://x-access-token:" + token + "@[::1]:8080/octo/hello.git",
		},
		[]string{
			"",
			"https://github.com/octo/hello.git", // no credentials
			"https://x-access-token@github.com/octo/hello.git",           // user without password
			"https://:" + token + "@github.com/octo/hello.git",           // password without user
			"https://x-access-token:" + token + "@github.com",            // no repository
			"https://x-access-token:" + token + "@github.com/",           // no repository
			"http://x-access-token:" + token + "@github.com/o/r.git",     // token in the clear
			"git://x-access-token:" + token + "@github.com/o/r.git",      // not http at all
			"ssh://x-access-token:" + token + "@github.com/o/r.git",      // not http at all
			"file:///srv/git/o/r.git",                                    // local file access
			"https://x-access-token:" + token + "@/o/r.git",              // no host
			"x-access-token:" + token + "@github.com:o/r.git",            // scp-like syntax
			"https://x-access-token:" + token + "@github.com/o/r.git\n",  // control character
			"https://x-access-token:" + token + "%zz@github.com/o/r.git", // bad escape
			"https://x-access-token:" + token + "/x@github.com/o/r.git",  // '/' inside userinfo
		})
}

// The clone URL carries the installation token: whatever is wrong with it,
// the message must be safe to log and to send to the platform.
func TestCloneURLErrorsNeverContainTheToken(t *testing.T) {
	for _, s := range []string{
		"http://x-access-token:" + token + "@github.com/o/r.git",
		"ftp://x-access-token:" + token + "@github.com/o/r.git",
		"https://x-access-token:" + token + "@github.com",
		"https://x-access-token:" + token + "@github.com/",
		"https://:" + token + "@github.com/o/r.git",
		"https://x-access-token:" + token + "@/o/r.git",
		"https://x-access-token:" + token + "@github.com/o/r.git\n",
		"https://x-access-token:" + token + "@github.com:notaport/o/r.git",
		"https://x-access-token:" + token + "%zz@github.com/o/r.git",
		"https://x-access-token:" + token + "/x@github.com/o/r.git",
		token, // the token pasted alone
		"https://" + token + "@github.com/o/r.git",
	} {
		err := validate.CloneURL(s)
		if err == nil {
			t.Errorf("%q accepted, want refused", s)
			continue
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "SeCrEt") {
			t.Errorf("error for %q leaks the token: %v", s, err)
		}
	}
}

func TestSourceURL(t *testing.T) {
	checkAll(t, validate.SourceURL,
		[]string{
			"https://github.com/octo/hello",
			"https://github.com/octo/hello.git",
			"http://127.0.0.1:8080/octo/hello",
		},
		[]string{
			"",
			"https://x-access-token:" + token + "@github.com/octo/hello", // labels are public
			"https://octo@github.com/octo/hello",
			"http://github.com/octo/hello",
			"git@github.com:octo/hello.git",
			"github.com/octo/hello",
		})
	err := validate.SourceURL("https://x-access-token:" + token + "@github.com/octo/hello")
	if err != nil && strings.Contains(err.Error(), token) {
		t.Errorf("SourceURL error leaks the token: %v", err)
	}
}

func TestIsCommitSHA(t *testing.T) {
	for ref, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef01234567":  true,
		"0123456789ABCDEF0123456789ABCDEF01234567":  false, // git prints lowercase; see TestRef
		"0123456789abcdef0123456789abcdef0123456":   false, // 39
		"0123456789abcdef0123456789abcdef012345678": false, // 41
		"0123456789abc": false, // abbreviated
		"g123456789abcdef0123456789abcdef01234567": false,
		"": false,
	} {
		if got := validate.IsCommitSHA(ref); got != want {
			t.Errorf("IsCommitSHA(%q) = %v, want %v", ref, got, want)
		}
	}
}

// Ref takes a full commit SHA or a branch name. An uppercase 40-hex string
// is not treated as a SHA (git always prints lowercase, and the runner
// fetches a SHA differently from a branch), but it is a perfectly valid branch
// name, so Ref accepts it as one: the runner will then look for a branch of
// that name.
func TestRef(t *testing.T) {
	const upper = "0123456789ABCDEF0123456789ABCDEF01234567"
	if validate.IsCommitSHA(upper) {
		t.Fatalf("uppercase %q is treated as a commit SHA", upper)
	}
	checkAll(t, validate.Ref,
		[]string{
			"0123456789abcdef0123456789abcdef01234567",
			upper,
			"main",
			"feature/login",
			"release-1.2",
			"0123456789abc", // an abbreviated SHA is a valid branch name too
		},
		[]string{
			"",
			"-main",           // could be read as an option by git
			"--upload-pack=x", // ditto
			"main..dev",
			"HEAD~1",
			"main^",
			"refs/heads/a b",
		})
}

// gitNames are tricky branch names compared with git's own rules by
// TestBranchNameAgreesWithGit; TestBranchName pins the expected answers so
// the rules are also checked where git is missing.
var gitNames = []struct {
	name string
	ok   bool
}{
	{"main", true},
	{"feature/x", true},
	{"feature/x/y-z_1.2", true},
	{"a.b", true},
	{"a./b", true}, // only the whole name must not end with '.'
	{"a.lock.b", true},
	{"lock", true},
	{"a@b", true},
	{"a{b", true},
	{"}", true},
	{"a-", true},
	{"HEAD", true},
	{"0123456789ABCDEF0123456789ABCDEF01234567", true},
	{"a\"b", true},
	{"a#b", true},
	{"a!b$c%d&e'f", true},
	{"a<b>c|d;e,f=g+h", true},
	{"café", true},
	{"功能/分支", true},
	{"emoji-🚀", true},
	{"a\u00a0b", true}, // no-break space: not ASCII, so git allows it
	{"a\u0085b", true}, // C1 control: git only refuses ASCII controls

	{"a..b", false},
	{"..", false},
	{"a.lock", false},
	{"a/b.lock", false},
	{"a.lock/b", false},
	{".lock", false},
	{".a", false},
	{"a/.b", false},
	{"a/./b", false},
	{"a/../b", false},
	{"a.", false},
	{"a/b.", false},
	{"a b", false},
	{"a\tb", false},
	{"a\x01b", false},
	{"a\x7fb", false},
	{"a~b", false},
	{"a^b", false},
	{"a:b", false},
	{"a?b", false},
	{"a*b", false},
	{"a[b", false},
	{"a\\b", false},
	{"a@{b", false},
	{"@{-1}", false},
	{"a/", false},
	{"/a", false},
	{"a//b", false},
	{"/", false},
}

// strictNames are valid per git-check-ref-format(1) for refs/heads/<name> but
// refused on purpose: a leading '-' can be read as an option by git and
// other tools (and `git branch` refuses it), '@' alone means HEAD, and the
// length bound keeps a ref usable as a label and in a log line.
var strictNames = []string{
	"-x",
	"--upload-pack=touch",
	"@",
	strings.Repeat("a", 256),
}

func TestBranchName(t *testing.T) {
	for _, c := range gitNames {
		if err := validate.BranchName(c.name); (err == nil) != c.ok {
			t.Errorf("BranchName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
	for _, name := range strictNames {
		if validate.BranchName(name) == nil {
			t.Errorf("BranchName(%.40q) accepted, want refused", name)
		}
	}
	checkAll(t, validate.BranchName,
		[]string{strings.Repeat("a", 255)},
		[]string{
			"",
			"a\x00b",
			"a\xffb", // git takes any byte >= 0x80; we insist on UTF-8
			"a\nb",
		})
}

// TestBranchNameAgreesWithGit runs the real git on every name. It checks the
// full ref (refs/heads/NAME) rather than `--branch NAME`, which also expands
// @{-N} and similar shorthands.
func TestBranchNameAgreesWithGit(t *testing.T) {
	gitPath := lookGit(t)
	for _, c := range gitNames {
		gitOK := gitAccepts(t, gitPath, c.name)
		if gitOK != c.ok {
			t.Errorf("git check-ref-format refs/heads/%q: ok=%v, but the table says %v", c.name, gitOK, c.ok)
		}
		if ours := validate.BranchName(c.name) == nil; ours != gitOK {
			t.Errorf("BranchName(%q): ok=%v, git: ok=%v", c.name, ours, gitOK)
		}
	}
	// The deliberate exceptions: git takes them, we do not.
	for _, name := range strictNames {
		if !gitAccepts(t, gitPath, name) {
			t.Errorf("git refuses refs/heads/%.40q; it need not be listed as a deliberate exception", name)
		}
	}
}

func lookGit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed")
	}
	return p
}

func gitAccepts(t *testing.T, gitPath, name string) bool {
	t.Helper()
	cmd := exec.Command(gitPath, "check-ref-format", "refs/heads/"+name)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return false
	default:
		t.Fatalf("git check-ref-format refs/heads/%q: %v", name, err)
		return false
	}
}

func TestImageTag(t *testing.T) {
	checkAll(t, validate.ImageTag,
		[]string{
			"ghcr.io/ns/user--owner-repo:abc123def456",
			"ghcr.io/alternatefutures/clz9x8y7w--octo-hello.world:0123456789ab",
			"127.0.0.1:5000/x:y",
			"localhost:5000/x:y",
			"localhost/x:y",
			"registry.example.com:443/a/b/c:v1.2.3",
		},
		[]string{
			"",
			"ubuntu:22.04",         // no registry host: would mean Docker Hub
			"library/ubuntu:22.04", // "library" is a path, not a host
			"octo/app:latest",
			"GHCR.io/x:y",        // uppercase
			"ghcr.io/Ns/app:abc", // uppercase repository
			"ghcr.io/ns/app:ABC", // uppercase tag, too
			"ghcr.io/ns/app",     // no tag
			"ghcr.io/ns/app:",    // empty tag
			"ghcr.io/ns/app@sha256:" + strings.Repeat("a", 64),
			"ghcr.io/ns/app:v1@sha256:" + strings.Repeat("a", 64),
			"ghcr.io/ns/app:has space",
			"ghcr.io/ns/-app:v1",
			"ghcr.io/ns/app:" + strings.Repeat("t", 129), // tags are at most 128
			"https://ghcr.io/ns/app:v1",
			"ghcr.io/ns/app:v1\n",
		})
}

func TestImageTagExplainsWhatIsMissing(t *testing.T) {
	for in, want := range map[string]string{
		"ubuntu:22.04":   "registry host",
		"GHCR.io/x:y":    "lowercase",
		"ghcr.io/ns/app": "tag",
		"ghcr.io/ns/app@sha256:" + strings.Repeat("a", 64): "digest",
	} {
		err := validate.ImageTag(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ImageTag(%q) = %v, want an error mentioning %q", in, err, want)
		}
	}
}

func TestRootDirectory(t *testing.T) {
	clean := map[string]string{
		"":                        ".",
		".":                       ".",
		"./":                      ".",
		"apps/web":                "apps/web",
		"apps/web/":               "apps/web",
		"./apps/web":              "apps/web",
		"apps//web":               "apps/web",
		"apps/./web":              "apps/web",
		".github/app":             ".github/app", // only .git itself is off limits
		".gitignore.d":            ".gitignore.d",
		"apps/.git-tools":         "apps/.git-tools",
		"a b/c":                   "a b/c",
		"...":                     "...", // a name, not a parent reference
		"パッケージ/web":               "パッケージ/web",
		strings.Repeat("a", 1024): strings.Repeat("a", 1024),
	}
	for in, want := range clean {
		got, err := validate.RootDirectory(in)
		if err != nil || got != want {
			t.Errorf("RootDirectory(%.40q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"..",
		"../x",
		"a/../../x",
		"a/..", // harmless, but '..' is refused outright rather than resolved
		"/etc",
		"/",
		".git",
		"./.git",
		".git/",
		".git/hooks",
		"a\\b",
		"..\\x",
		"a\x00b",
		strings.Repeat("a", 1025),
	} {
		if got, err := validate.RootDirectory(in); err == nil {
			t.Errorf("RootDirectory(%.40q) = %q, want refused", in, got)
		} else if got != "" {
			t.Errorf("RootDirectory(%.40q) returned %q along with an error", in, got)
		}
	}
}

func TestCommand(t *testing.T) {
	emoji := strings.Repeat("🚀", validate.MaxCommandChars) // 4096 characters, 16384 bytes
	ok := map[string]string{
		"":                             "",
		"npm run build":                "npm run build",
		"npm run build\n":              "npm run build", // pasted or base64'd from a file
		"npm run build\r\n":            "npm run build",
		"npm run build\n\n":            "npm run build",
		"  npm start  ":                "npm start",
		"make\tall":                    "make\tall", // tabs are ordinary shell whitespace
		"npm ci && npm run build":      "npm ci && npm run build",
		`sh -c 'echo "$PORT" | tee x'`: `sh -c 'echo "$PORT" | tee x'`,
		"echo héllo 🚀":                 "echo héllo 🚀",
		// What service-cloud-api stores: line breaks of any kind, as one
		// script with "\n" between its lines.
		"npm ci\nnpm run build":                              "npm ci\nnpm run build",
		"npm ci\r\nnpm run build\r\n":                        "npm ci\nnpm run build",
		"npm ci\rnpm run build":                              "npm ci\nnpm run build",
		"npm ci\n\nnpm run build\n":                          "npm ci\n\nnpm run build",
		"echo \x1b[31mred":                                   "echo \x1b[31mred",
		"echo \x7f":                                          "echo \x7f",
		strings.Repeat("x", validate.MaxCommandChars):        strings.Repeat("x", validate.MaxCommandChars),
		strings.Repeat("x", validate.MaxCommandChars) + "\n": strings.Repeat("x", validate.MaxCommandChars),
		emoji: emoji,
	}
	for in, want := range ok {
		got, err := validate.Command(in)
		if err != nil || got != want {
			t.Errorf("Command(%.40q) = %.40q, %v; want %.40q", in, got, err, want)
		}
	}

	refused := map[string]string{
		strings.Repeat("x", validate.MaxCommandChars+1): "4096",
		emoji + "🚀":        "4096",
		"echo \x00":        "NUL",
		"npm ci\n\x00rm x": "NUL",
		"echo \xff":        "UTF-8",
	}
	for in, want := range refused {
		got, err := validate.Command(in)
		if err == nil {
			t.Errorf("Command(%.40q) = %q, want refused", in, got)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Command(%.40q) error %q does not mention %q", in, err, want)
		}
	}
}

func TestRepoOwner(t *testing.T) {
	checkAll(t, validate.RepoOwner,
		[]string{"octo", "Octo-Cat", "a", "0", "a1-b2", strings.Repeat("a", 39)},
		[]string{
			"",
			strings.Repeat("a", 40),
			"-octo",
			"octo_cat",
			"octo.cat",
			"octo/cat",
			"octo cat",
			"öcto",
		})
}

func TestRepoName(t *testing.T) {
	checkAll(t, validate.RepoName,
		[]string{"hello", "Hello-World", "hello.world", "hello_world", ".github", "a", "-x", strings.Repeat("r", 100)},
		[]string{
			"",
			".",
			"..",
			strings.Repeat("r", 101),
			"a/b",
			"a b",
			"a:b",
			"héllo",
		})
}
