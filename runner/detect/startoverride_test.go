package detect

import "testing"

func TestStartCommandOverrideDecidesThePort(t *testing.T) {
	eightThousand := 8000
	detected := Result{Framework: "fastapi", Language: "python", Port: &eightThousand, PortSource: "framework default (uvicorn)"}
	cases := []struct {
		cmd      string
		wantPort int
	}{
		{"uvicorn main:app --host 0.0.0.0 --port $PORT", DefaultPort},
		{"uvicorn main:app --host 0.0.0.0 --port 9001", 9001},
		{"gunicorn -b 0.0.0.0:7000 app:app", 7000},
		{"python worker.py", 8000}, // says nothing: the detected port stays
	}
	for _, c := range cases {
		t.Run(c.cmd, func(t *testing.T) {
			r := ApplyStartCommand(detected, c.cmd)
			if r.Port == nil || *r.Port != c.wantPort {
				t.Errorf("port = %v, want %d (reasons %q)", r.Port, c.wantPort, r.Reasons)
			}
			if r.Framework != "fastapi" || r.StartCommand != c.cmd {
				t.Errorf("framework %q, start %q", r.Framework, r.StartCommand)
			}
		})
	}
	if *detected.Port != 8000 || len(detected.Reasons) != 0 {
		t.Errorf("the input result was changed: %+v", detected)
	}
}
