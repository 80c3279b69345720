"""The one place that knows the MQTT topic scheme and how the MDMS connects to its broker."""
