"""Monitoring that closes the loop: drift, data quality, label-delayed performance, rules, alerts, retraining.

- ``reference``: the training reference profile stored with each model (fixed bins, shares, volumes);
- ``windows``: the served scores, in event-time windows (hour, day);
- ``drift``, ``quality``, ``performance``: the metrics, computed with Spark, as rows of ``monitoring.metrics``;
- ``rules``: thresholds, minimum samples and consecutive breaches -> alerts (``monitoring.alerts``);
- ``retraining``: whether the alerts ask for a retraining now, and as of which day;
- ``report``: the HTML report; ``dashboard``: the web dashboard; ``job``: one monitoring run end to end.
"""
