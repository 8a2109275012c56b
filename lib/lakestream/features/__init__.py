"""Feature sets defined once (conf/features/*.yaml) and computed by the batch and streaming engines."""
