package plan

import "strings"

// ShellLine renders a build or start command as one line of POSIX shell that
// runs it as a script. A command service-cloud-api stores may span lines
// (validate.Command normalises its breaks to "\n"), but every place a
// planner puts a command takes one line: a Dockerfile RUN or CMD, nixpacks'
// --build-cmd/--start-cmd (which it writes into its Dockerfile as they
// are). A one-line command is returned unchanged. A multi-line one becomes
//
//	sh -ec "$(printf '%s\n' 'line 1' 'line 2' ...)"
//
// printf and command substitution are in every POSIX shell (busybox, dash,
// bash), so this needs nothing from the image; each line travels in single
// quotes, so nothing in it is expanded until the script itself runs, where
// it means exactly what it meant in the user's editor (quotes, $VARS, %,
// backslashes, heredocs, if/fi blocks spanning lines). -e stops the script
// at the first failing line, as CI runners do: otherwise a failed `npm ci`
// followed by a passing line would pass the build.
func ShellLine(cmd string) string {
	if !strings.Contains(cmd, "\n") {
		return cmd
	}
	var b strings.Builder
	b.WriteString(`sh -ec "$(printf '%s\n'`)
	for _, line := range strings.Split(cmd, "\n") {
		b.WriteString(" '")
		b.WriteString(strings.ReplaceAll(line, "'", `'\''`))
		b.WriteString("'")
	}
	b.WriteString(`)"`)
	return b.String()
}
