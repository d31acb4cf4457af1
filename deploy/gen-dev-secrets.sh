#!/usr/bin/env bash
# Make a DEVELOPMENT set of the secrets deploy/compose.yaml mounts: a database password,
# the engine's libpq password file, and two private CAs for the engine <-> signer mTLS link.
#
#   deploy/gen-dev-secrets.sh [DIR]      (default: deploy/secrets next to this script)
#
# Two CAs, not one: the signer trusts only certificates from `signer_client_ca`, which
# signs nothing but the engine's client certificate, so no other certificate of the
# deployment (not even the signer's own server certificate) can open a session to it.
# Production keys come from your PKI / secret store, not from this script.
set -euo pipefail

dir="${1:-$(dirname "$0")/secrets}"
mkdir -p "$dir"
cd "$dir"
umask 077

days=825
openssl_quiet() { openssl "$@" 2>/dev/null; }

# Database password: 32 random bytes, hex, so it needs no escaping in a pgpass line.
pw="$(openssl rand -hex 32)"
printf '%s' "$pw" > postgres_password
# libpq/sqlx password file: host:port:database:user:password
printf 'postgres:5432:stratbox:stratbox:%s\n' "$pw" > engine_pgpass

make_ca() { # name subject
  openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.pem" -days "$days" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
}

make_leaf() { # name ca subject eku san
  openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "$3"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$4" "$5" > "$1.ext"
  openssl_quiet x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -out "$1.pem" -days "$days" -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}

# The CA the engine uses to verify the signer's server certificate.
make_ca signer_ca "/CN=stratbox signer server CA"
make_leaf signer_tls signer_ca "/CN=signer" serverAuth \
  "DNS:signer,DNS:signer.stratbox-fortress.svc,DNS:signer.stratbox-fortress.svc.cluster.local"

# The CA the signer uses to verify its only client, the engine.
make_ca signer_client_ca "/CN=stratbox signer client CA"
make_leaf engine_signer_client signer_client_ca "/CN=engine" clientAuth "DNS:engine"

# CA keys are not needed at run time: keep them out of the directory compose mounts from.
mkdir -p ca-keys
mv signer_ca.key signer_client_ca.key ca-keys/
rm -f ./*.srl

# The containers run as non-root users: postgres as 999, stratbox services as 10001.
if [ "$(id -u)" = 0 ]; then
  chown 999:999 postgres_password
  chown 10001:10001 engine_pgpass engine_signer_client.key signer_tls.key
fi
chmod 0400 postgres_password engine_pgpass engine_signer_client.key signer_tls.key
chmod 0444 signer_ca.pem signer_client_ca.pem signer_tls.pem engine_signer_client.pem

echo "development secrets written to $(pwd)"
