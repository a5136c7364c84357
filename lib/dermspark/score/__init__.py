"""The scoring job: a pandas UDF that applies one bundle to image files in batches."""
