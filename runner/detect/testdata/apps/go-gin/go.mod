module example.com/gin-app

go 1.22

require github.com/gin-gonic/gin v1.10.0

require (
	github.com/bytedance/sonic v1.11.6 // indirect
	golang.org/x/net v0.25.0 // indirect
)
