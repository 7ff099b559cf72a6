"""Faust agents: thin wrappers that feed batches to streams.pipeline and ship the output."""
