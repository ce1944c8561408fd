"""The handler cores: a request or a shard task in, objects written through the ports out."""
