module example.com/fiber-app

go 1.22.3

toolchain go1.22.4

require github.com/gofiber/fiber/v2 v2.52.4
