#!/usr/bin/env bash
# Makes a throw-away certificate authority and, signed by it, one certificate per host for both
# the peer links and the HTTPS API (server and client use), plus a client certificate for the
# CLI. For tests and trials only: the CA key sits beside the certificates, unencrypted.
#
#   scripts/make-test-ca.sh DIR HOST...     e.g. scripts/make-test-ca.sh ./tls 10.0.0.1 10.0.0.2 127.0.0.1
#
# Writes DIR/ca.pem, DIR/ca-key.pem, DIR/<host>.pem + DIR/<host>-key.pem for each HOST (its IP
# address or DNS name is in subjectAltName), and DIR/client.pem + DIR/client-key.pem.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 DIR HOST..." >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl is not installed" >&2; exit 1; }
dir=$1
shift
mkdir -p "$dir"
days=30

openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=tspaxos test CA" \
  -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null

sign() { # name, subjectAltName
  local name=$1 san=$2
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -days "$days" -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

for host in "$@"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then sign "$host" "IP:$host"; else sign "$host" "DNS:$host"; fi
done
sign client "DNS:client"
rm -f "$dir/ca.srl"
echo "CA and certificates for $* in $dir"
