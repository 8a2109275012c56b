"""Real-time scoring: Kafka -> validation -> online features -> champion model -> Delta and Kafka."""
