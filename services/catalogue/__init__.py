"""The national catalogue of public services: what an OSS centre offers, where, by which agency."""
