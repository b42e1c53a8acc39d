"""otklik stream processing: the faust app, topics, the CLI and local services."""
