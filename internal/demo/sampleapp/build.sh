set -e
mkdir -p out
sed "s/{{VERSION}}/$(cat VERSION)/" index.html.tmpl > out/index.html
echo "site: built version $(cat VERSION)"
