"""Consumer alerts: thresholds a consumer sets on their meter, evaluated by a beat job, notified once per breach."""
