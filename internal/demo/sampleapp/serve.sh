echo "serving on port ${PORT:-8080}"
exec httpd -f -p "${PORT:-8080}" -h /www
