"""The ports made real: S3 and a local folder as object stores, Lambda as an invoker, Glue."""
