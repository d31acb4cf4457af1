#!/usr/bin/env bash
# Make a DEVELOPMENT set of the secrets deploy/compose.yaml mounts: a database password,
# the engine's libpq password file, two private CAs for the engine <-> signer mTLS link,
# two for the engine's own TLS port (its server CA, and the CA of its clients: hosts and its
# health check),
# the threshold key's cluster files (identities of the three shares and the coordinator),
# the shares' sealing passphrases, and a development signer config (`[threshold]`).
#
#   deploy/gen-dev-secrets.sh [DIR]      (default: deploy/secrets next to this script)
#
# The cluster files are made by the stratbox binary itself (`stratbox signer cluster init`):
# set STRATBOX=/path/to/stratbox, or have `stratbox` on PATH, or build it first
# (`cargo build --release -p stratbox`; target/release/stratbox is then used). Without a
# binary on this machine, run it from the image instead:
#   docker run --rm -u "$(id -u)" -v "$PWD/deploy/secrets:/out" stratbox:dev \
#     signer cluster init --out /out/threshold --share signer-share-0:50070 \
#     --share signer-share-1:50070 --share signer-share-2:50070
#
# Two CAs, not one: the signer trusts only certificates from `signer_client_ca`, which
# signs nothing but the engine's client certificate, so no other certificate of the
# deployment (not even the signer's own server certificate) can open a session to it.
# Production keys come from your PKI / secret store, not from this script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
stratbox="${STRATBOX:-}"
if [ -z "$stratbox" ]; then
  if command -v stratbox >/dev/null 2>&1; then
    stratbox="$(command -v stratbox)"
  elif [ -x "$here/../target/release/stratbox" ]; then
    stratbox="$here/../target/release/stratbox"
  else
    echo "gen-dev-secrets.sh: no stratbox binary for \`signer cluster init\`: set STRATBOX=..., put it on PATH, or see the header of this script" >&2
    exit 1
  fi
fi
# Absolute, since the script changes directory below.
case "$stratbox" in /*) ;; *) stratbox="$(cd "$(dirname "$stratbox")" && pwd)/$(basename "$stratbox")" ;; esac

dir="${1:-$here/secrets}"
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

# The engine's own gRPC port (TLS, client certificates required): a CA for its server
# certificate, which hosts and operators' CLIs verify it with (`--engine-ca`), and a client
# CA that signs only the engine's clients: the hosts, and the engine's own health check.
make_ca engine_ca "/CN=stratbox engine server CA"
make_leaf engine_tls engine_ca "/CN=engine" serverAuth \
  "DNS:engine,DNS:engine.stratbox-sandbox.svc,DNS:engine.stratbox-sandbox.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
make_ca engine_client_ca "/CN=stratbox engine client CA"
make_leaf host_engine_client engine_client_ca "/CN=host" clientAuth "DNS:host"
make_leaf engine_probe_client engine_client_ca "/CN=engine-probe" clientAuth "DNS:engine-probe"

# The threshold key: the cluster file and mTLS identities for the three shares and the
# coordinator (signer and ceremony). The share addresses are compose's service names on
# `fortress-keys` (the same short names resolve in the Kubernetes namespace, where
# deploy/k8s/signer-shares.yaml makes a Service per share).
rm -rf threshold
"$stratbox" signer cluster init --out threshold \
  --share signer-share-0:50070 --share signer-share-1:50070 --share signer-share-2:50070 >/dev/null
# Each share's sealing passphrase.
for i in 0 1 2; do
  openssl rand -hex 32 > "share_${i}_passphrase"
done

# The signer's config: everything it names is a compose secret, by its name under
# /run/secrets, next to this file (relative paths are relative to the config file).
spki() { openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1; }
cat > signer_policy.toml <<'POLICY'
# DEVELOPMENT policy: the local anvil chain only, small fees.
chain_ids = [31337]
max_fee_per_gas = "100000000000"
max_priority_fee_per_gas = "10000000000"
max_gas_limit = 1000000
POLICY
cat > signer.toml <<CONFIG
# DEVELOPMENT signer config (deploy/gen-dev-secrets.sh), mounted as /run/secrets/signer_config.
database = "sqlite:///var/lib/stratbox/signer/signer.db"
policy = "signer_policy"
listen = "0.0.0.0:50061"
admin_listen = "127.0.0.1:50062"
tls_cert = "signer_tls_cert"
tls_key = "signer_tls_key"
client_ca = "signer_client_ca"

# The 2-of-3 threshold key (instead of [keystore] dev_file). Run the ceremony once first:
# docker compose ... --profile ceremony run --rm signer-keygen
[threshold]
cluster = "threshold_cluster"
cert = "coordinator_cert"
key = "coordinator_key"
presign_pool = 8

[[engine_clients]]
name = "engine"
spki_sha256 = "$(spki engine_signer_client.pem)"
CONFIG

# CA keys are not needed at run time: keep them out of the directory compose mounts from.
mkdir -p ca-keys
mv signer_ca.key signer_client_ca.key engine_ca.key engine_client_ca.key ca-keys/
rm -f ./*.srl

# The containers run as non-root users: postgres as 999, stratbox services as 10001.
private="engine_pgpass engine_signer_client.key signer_tls.key signer.toml
  engine_tls.key host_engine_client.key engine_probe_client.key
  threshold/coordinator.key.pem threshold/share-0.key.pem threshold/share-1.key.pem
  threshold/share-2.key.pem share_0_passphrase share_1_passphrase share_2_passphrase"
if [ "$(id -u)" = 0 ]; then
  chown 999:999 postgres_password
  # shellcheck disable=SC2086
  chown 10001:10001 $private
fi
# shellcheck disable=SC2086
chmod 0400 postgres_password $private
chmod 0755 threshold
chmod 0444 signer_ca.pem signer_client_ca.pem signer_tls.pem engine_signer_client.pem \
  engine_ca.pem engine_client_ca.pem engine_tls.pem host_engine_client.pem engine_probe_client.pem \
  signer_policy.toml threshold/cluster.json threshold/coordinator.crt.pem \
  threshold/share-0.crt.pem threshold/share-1.crt.pem threshold/share-2.crt.pem

echo "development secrets written to $(pwd)"
