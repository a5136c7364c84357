"""The ingest job: an image archive in, a Petastorm dataset plus a manifest and rejects out."""
