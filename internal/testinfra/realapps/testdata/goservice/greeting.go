package main

// The benchmark's warm build changes this file.
const greeting = "hello from go"
