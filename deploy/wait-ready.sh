#!/usr/bin/env bash
# Waits up to three minutes for rotor's readiness URL ($1) to return 200,
# then prints how to call the API. On failure it prints the stack's logs.
set -euo pipefail

url=$1
for _ in $(seq 1 90); do
  if curl -fsS "$url" >/dev/null 2>&1; then
    cat <<'EOT'
rotor is ready on https://localhost:8443 (admin: http://127.0.0.1:9090).
Create a note with the demo client certificate:

  curl --cacert local/certs/client/ca.crt --cert local/certs/client/tls.crt \
       --key local/certs/client/tls.key -H 'Content-Type: application/json' \
       -d '{"title":"hello","body":"first note"}' https://localhost:8443/v1/notes
EOT
    exit 0
  fi
  sleep 2
done

echo "rotor did not become ready at $url; the stack's logs follow" >&2
if docker compose version >/dev/null 2>&1; then docker compose logs --tail=50 >&2; else docker-compose logs --tail=50 >&2; fi
exit 1
