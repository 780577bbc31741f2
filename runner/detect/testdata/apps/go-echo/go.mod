module example.com/echo-app

go 1.21

require github.com/labstack/echo/v4 v4.12.0
