#!/usr/bin/env bash
# Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d, deploy/compose.yaml):
# the role Grafana's datasource `otklik-store` logs in as (grafana/provisioning/datasources/otklik-store.yaml).
# It may read every table the store's role creates, now or later, and write none: Grafana runs whatever
# SQL a dashboard editor types. Without OTKLIK_STORE_GRAFANA_PASSWORD no role is made (and the two store
# dashboards cannot log in). Tested by tests/integration/test_history_dashboards.py.
if [ -z "${OTKLIK_STORE_GRAFANA_PASSWORD:-}" ]; then
  echo "grafana-reader: OTKLIK_STORE_GRAFANA_PASSWORD is not set, no role for Grafana" >&2
else
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=reader="${OTKLIK_STORE_GRAFANA_USER:-otklik_grafana}" \
    --set=owner="${OTKLIK_STORE_OWNER:-$POSTGRES_USER}" \
    --set=password="$OTKLIK_STORE_GRAFANA_PASSWORD" \
    --set=db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"reader" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
fi
