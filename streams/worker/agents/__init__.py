"""Faust agents: thin wrappers that feed batches to the stages (streams.ingest, streams.aggregate)
and ship the output."""
