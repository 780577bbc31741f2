# The benchmark's warm build changes this file.
GREETING = "hello from flask"
