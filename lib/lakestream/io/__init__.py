"""All reads and writes: Delta tables, Kafka topics, landed files. Transforms stay pure elsewhere."""
