"""Scheduled pulls of load curves from a utility data hub (an HTTP API speaking the Enedis JSON).

- `client`: one HTTP GET with retries, backoff and Retry-After (stdlib urllib, no new package);
- `ratelimit`: at most one request per second per hub, across every process (Redis);
- `body`: the answer checked whole with the importer's Enedis parser, bad elements located by line;
- `pull`: a day range fetched, parsed and stored through the ingest pipeline, and recorded;
- `services`: the daily job's and the backfill's choice of what to pull.

The connectors and the pull records are models of the ingest app (ingest.models). See docs/datahub.md.
"""
