"""Code shared by every OSS service: config, regions, events, outbox, database, HTTP, metrics."""
