#!/bin/sh
# First start: create the dynamic-security file with the MDMS admin account, then run the broker.
set -e
if [ ! -f /mosquitto/data/dynamic-security.json ]; then
  mosquitto_ctrl dynsec init /mosquitto/data/dynamic-security.json mdms-admin "$MQTT_ADMIN_PASSWORD"
  chown mosquitto /mosquitto/data/dynamic-security.json
fi
exec mosquitto -c /mosquitto/config/mosquitto.conf
