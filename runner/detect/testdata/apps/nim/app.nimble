version = "0.1.0"
bin = @["app"]
requires "nim >= 2.0.0"
