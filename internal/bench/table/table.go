// Package table prints benchmark results: rows keyed by workload, columns
// keyed by name, so that each measurement (cold, warm, a new builder, a
// cache export, a runner variant) adds its own column or row without knowing
// the others. It renders as aligned text for a terminal and as Markdown for
// the README.
package table

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Table is a grid of cells addressed by row key and column name.
type Table struct {
	// Title is printed above the table.
	Title string
	// Key names the first column, which holds the row keys.
	Key     string
	columns []string
	rows    []string
	cells   map[[2]string]string
	notes   []string
}

// New makes a table whose first column is key.
func New(title, key string, columns ...string) *Table {
	t := &Table{Title: title, Key: key, cells: map[[2]string]string{}}
	for _, c := range columns {
		t.AddColumn(c)
	}
	return t
}

// AddColumn appends a column unless it exists.
func (t *Table) AddColumn(name string) {
	if !slices.Contains(t.columns, name) {
		t.columns = append(t.columns, name)
	}
}

// AddRow appends a row unless it exists.
func (t *Table) AddRow(key string) {
	if !slices.Contains(t.rows, key) {
		t.rows = append(t.rows, key)
	}
}

// Set fills one cell, adding its row and column when new.
func (t *Table) Set(row, column, value string) {
	t.AddRow(row)
	t.AddColumn(column)
	t.cells[[2]string{row, column}] = value
}

// Get returns a cell ("" when unset).
func (t *Table) Get(row, column string) string { return t.cells[[2]string{row, column}] }

// Note adds a line printed under the table.
func (t *Table) Note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// Columns are the column names after the key column, in order.
func (t *Table) Columns() []string { return slices.Clone(t.columns) }

// Rows are the row keys, in order.
func (t *Table) Rows() []string { return slices.Clone(t.rows) }

func (t *Table) grid() [][]string {
	g := [][]string{append([]string{t.Key}, t.columns...)}
	for _, r := range t.rows {
		line := []string{r}
		for _, c := range t.columns {
			v := t.Get(r, c)
			if v == "" {
				v = "-"
			}
			line = append(line, v)
		}
		g = append(g, line)
	}
	return g
}

// Text writes the table with aligned columns.
func (t *Table) Text(w io.Writer) error {
	g := t.grid()
	widths := make([]int, len(g[0]))
	for _, line := range g {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n\n")
	}
	for n, line := range g {
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c) // numbers read best right-aligned
			}
		}
		b.WriteString("\n")
		if n == 0 {
			total := len(widths)*2 - 2
			for _, wd := range widths {
				total += wd
			}
			b.WriteString(strings.Repeat("-", total) + "\n")
		}
	}
	for _, n := range t.notes {
		b.WriteString("  " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Markdown writes the table as GitHub Markdown, notes as a list below.
func (t *Table) Markdown(w io.Writer) error {
	g := t.grid()
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n\n")
	}
	for n, line := range g {
		b.WriteString("| " + strings.Join(escape(line), " | ") + " |\n")
		if n == 0 {
			seps := make([]string, len(line))
			seps[0] = "---"
			for i := 1; i < len(seps); i++ {
				seps[i] = "---:"
			}
			b.WriteString("| " + strings.Join(seps, " | ") + " |\n")
		}
	}
	if len(t.notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.notes {
			b.WriteString("- " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func escape(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}

// Duration formats a duration for a table: "74.2 s", "850 ms".
func Duration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// Ratio formats part/whole: "0.18x".
func Ratio(part, whole time.Duration) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(part)/float64(whole))
}

// Size formats bytes in decimal megabytes, as `docker images` does: "243 MB".
func Size(bytes int64) string {
	switch {
	case bytes >= 10e6:
		return fmt.Sprintf("%.0f MB", float64(bytes)/1e6)
	case bytes >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(bytes)/1e6)
	default:
		return fmt.Sprintf("%.0f kB", float64(bytes)/1e3)
	}
}
