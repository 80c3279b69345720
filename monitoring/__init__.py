"""Monitoring: anomalies in readings, outage incidents, and the webhook to the outage management system."""
