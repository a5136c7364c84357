"""The training job: Horovod on Spark over a Petastorm dataset, then a bundle and its metrics."""
