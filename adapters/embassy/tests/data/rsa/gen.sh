#!/usr/bin/env bash
# Regenerates the RSA-2048 test chain (root -> intermediate -> leaf for "localhost"), the shape
# AWS endpoints present (Amazon Root CA 1 -> intermediate -> leaf). Test data only: the keys are
# public. Needs openssl.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days $days -subj "/CN=ssm-session test RSA root" \
  -keyout root.key -out root.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=ssm-session test RSA intermediate" \
  -keyout int.key -out int.csr 2>/dev/null
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' > int.ext
openssl x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -sha256 -days $days \
  -extfile int.ext -out int.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout leaf.key -out leaf.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -sha256 -days $days \
  -extfile leaf.ext -out leaf.pem 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in leaf.key -out leaf.pk8.pem
openssl x509 -in root.pem -outform DER -out root.der
rm -f int.csr leaf.csr int.ext leaf.ext root.srl int.srl root.key int.key leaf.key
