#!/bin/sh
# First start: create the dynamic-security file with the MDMS admin account. Then run the broker,
# with the TLS listener for meters with client certificates when the meter CA is mounted
# (/mosquitto/certs: ca.crt, broker.crt, broker.key; docs/mqtt-tls.md), and keep it reading the CRL
# the MDMS publishes on the shared volume (/mosquitto/crl/crl.pem): Mosquitto 2 reads the CRL when
# the listener starts and again on SIGHUP only, so a change of the file is answered with a SIGHUP.
set -e
if [ ! -f /mosquitto/data/dynamic-security.json ]; then
  mosquitto_ctrl dynsec init /mosquitto/data/dynamic-security.json mdms-admin "$MQTT_ADMIN_PASSWORD"
  chown mosquitto /mosquitto/data/dynamic-security.json
fi

CONF=/mosquitto/config/mosquitto.conf
CRL=/mosquitto/crl/crl.pem
if [ -f /mosquitto/certs/ca.crt ] && [ -f /mosquitto/certs/broker.crt ] && [ -f /mosquitto/certs/broker.key ]; then
  # The listener refuses to start without its CRL: wait for the first one (manage.py mqtt_sync
  # publishes it before it talks to the broker; the web service runs it at every start).
  waited=0
  while [ ! -s "$CRL" ] && [ "$waited" -lt 300 ]; do sleep 1; waited=$((waited + 1)); done
  if [ ! -s "$CRL" ]; then
    echo "no CRL at $CRL after 300 s: run manage.py mqtt_sync with MQTT_METER_CRL_FILE on the shared volume" >&2
    exit 1
  fi
  cat /mosquitto/config/mosquitto.conf /mosquitto/config/tls.conf > /tmp/mosquitto.conf
  CONF=/tmp/mosquitto.conf
else
  echo "no meter CA in /mosquitto/certs: the TLS listener for meter certificates is off" >&2
fi

mosquitto -c "$CONF" &
pid=$!
trap 'kill -TERM "$pid"' TERM INT
# The content's hash, not the mtime: two CRLs written within one second must both be read.
last=$(md5sum "$CRL" 2>/dev/null || echo none)
while kill -0 "$pid" 2>/dev/null; do
  sleep 2
  now=$(md5sum "$CRL" 2>/dev/null || echo none)
  if [ "$now" != "$last" ]; then
    last=$now
    kill -HUP "$pid"
  fi
done
wait "$pid"
