#!/usr/bin/env bash
# deploy/make-certs.sh — makes a small private CA and the certificates the
# controller (TLS) and its nodes (mutual TLS) need, with Debian's openssl.
# For trials, labs and tests; in production use your own PKI.
#
#   deploy/make-certs.sh DIR [--controller-name NAME]... [--node NAME]...
#
# Writes into DIR (created, mode 0700):
#   ca.crt ca.key                     the CA (EC P-256, valid 825 days)
#   controller.crt controller.key     server certificate; subjectAltName:
#                                     localhost, 127.0.0.1, ::1 and every
#                                     --controller-name (DNS name or address)
#   node-NAME.crt node-NAME.key       client certificate per --node, CN=NAME
#                                     (the controller takes the node's name
#                                     from it)
# Existing files are kept (idempotent); delete DIR to start over.
set -euo pipefail

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
dir=$1
shift
names=()
nodes=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --controller-name) [[ $# -ge 2 ]] || usage; names+=("$2"); shift 2 ;;
    --node) [[ $# -ge 2 ]] || usage; nodes+=("$2"); shift 2 ;;
    *) echo "make-certs: unknown argument \"$1\"" >&2; usage ;;
  esac
done
command -v openssl >/dev/null || {
  echo "make-certs: openssl not found; run deploy/setup.sh (or apt-get install openssl)" >&2
  exit 1
}

mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"
days=825
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

if [[ ! -f ca.crt ]]; then
  openssl req -x509 "${newkey[@]}" -keyout ca.key -out ca.crt -days "$days" \
    -subj "/CN=anylb trial CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "make-certs: $dir/ca.crt"
fi

# issue NAME KIND EXTENSIONS: a key and a certificate signed by the CA.
issue() {
  local name=$1 kind=$2 ext=$3
  [[ -f $name.crt ]] && return 0
  openssl req "${newkey[@]}" -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$kind" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$name.crt" -days "$days" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$name.csr"
  chmod 0600 "$name.key"
  echo "make-certs: $dir/$name.crt"
}

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
done
issue controller controller "subjectAltName=$san
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"

for n in "${nodes[@]}"; do
  if [[ ! $n =~ ^[A-Za-z0-9._-]{1,63}$ ]]; then
    echo "make-certs: node name \"$n\": use 1..63 of [A-Za-z0-9._-]" >&2
    exit 2
  fi
  issue "node-$n" "$n" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
done
