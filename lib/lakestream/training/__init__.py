"""Model training: time splits, metrics of the fraud protocol, XGBoost (distributed and single-node), tuning."""
