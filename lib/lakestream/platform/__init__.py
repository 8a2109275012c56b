"""The local platform the project runs itself: JVM jars, the Kafka broker, background services."""
