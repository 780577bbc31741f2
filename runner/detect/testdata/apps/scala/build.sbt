scalaVersion := "3.4.1"
name := "app"
