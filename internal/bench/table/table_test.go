package table

import (
	"strings"
	"testing"
	"time"
)

func TestColumnsAndRowsAddedByDifferentMeasurements(t *testing.T) {
	tb := New("Builds", "app", "cold", "warm")
	tb.Set("nextjs", "cold", Duration(95*time.Second))
	tb.Set("nextjs", "warm", Duration(12500*time.Millisecond))
	tb.Set("express", "cold", Duration(40*time.Second))
	// A later measurement adds a column for one row and a row of its own.
	tb.Set("nextjs", "warm on a new builder", Duration(31*time.Second))
	tb.Set("runner overhead", "cold", Duration(800*time.Millisecond))
	tb.Note("2 cores")

	var text strings.Builder
	if err := tb.Text(&text); err != nil {
		t.Fatal(err)
	}
	want := `Builds

app                cold    warm  warm on a new builder
------------------------------------------------------
nextjs           95.0 s  12.5 s                 31.0 s
express          40.0 s       -                      -
runner overhead  800 ms       -                      -
  2 cores
`
	if text.String() != want {
		t.Errorf("Text:\n%s\nwant:\n%s", text.String(), want)
	}

	var md strings.Builder
	if err := tb.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	wantMD := `Builds

| app | cold | warm | warm on a new builder |
| --- | ---: | ---: | ---: |
| nextjs | 95.0 s | 12.5 s | 31.0 s |
| express | 40.0 s | - | - |
| runner overhead | 800 ms | - | - |

- 2 cores
`
	if md.String() != wantMD {
		t.Errorf("Markdown:\n%s\nwant:\n%s", md.String(), wantMD)
	}
}

func TestFormats(t *testing.T) {
	for got, want := range map[string]string{
		Ratio(15*time.Second, 60*time.Second): "0.25x",
		Ratio(time.Second, 0):                 "-",
		Size(243_400_000):                     "243 MB",
		Size(4_250_000):                       "4.2 MB",
		Size(900_000):                         "900 kB",
		Duration(1500 * time.Millisecond):     "1.5 s",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
