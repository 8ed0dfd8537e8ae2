#!/usr/bin/env bash
# Makes a throw-away certificate authority and certificates for trying TLS and
# mutual TLS, with openssl:
#   ca.pem ca.key                 the CA the coordinator and clients trust
#   server.pem server.key         the coordinator's certificate (SAN: localhost,
#                                 127.0.0.1 and every extra name given)
#   client.pem client.key         a client certificate signed by the CA (mutual TLS)
#   other-ca.pem other-ca.key     an unrelated CA, and
#   other-client.pem other-client.key   a client certificate it signed (for tests:
#                                 must be refused)
# Usage: scripts/make-test-certs.sh OUT_DIR [extra-dns-or-ip ...]
# For production use your organisation's CA; these keys are unencrypted.
set -euo pipefail
out=${1:?usage: make-test-certs.sh OUT_DIR [extra SAN ...]}
shift
mkdir -p "$out"
cd "$out"
umask 077

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in "$@"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
done

make_ca() {  # name subject
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 -subj "/CN=$2" \
    -keyout "$1.key" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
}

make_cert() {  # name subject ca extensions
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 365 \
    -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

make_ca ca "resweep test CA"
make_ca other-ca "unrelated test CA"
make_cert server "resweep-coordinator" ca \
  "subjectAltName=$san
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
make_cert client "resweep-client" ca "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
make_cert other-client "intruder" other-ca "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
rm -f ./*.srl
chmod 644 ./*.pem
echo "certificates in $(pwd): ca.pem server.pem/.key client.pem/.key other-ca.pem other-client.pem/.key"
