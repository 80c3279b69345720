"""VEE: validation, estimation and editing of interval data.

`validation` checks a meter-day's raw readings and fills the exception queue; `estimation` fills
the gaps with flagged estimates; editing is in billing.vee.services (it writes the audit trail).
`vee_run` in billing.vee.services runs both for a range of days and refreshes the rollups.
"""
