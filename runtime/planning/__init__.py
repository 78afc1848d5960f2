"""Cost and time, before and after a job: pure functions, no I/O beyond what callers pass.

- ``prices``: the price table (documented defaults per region and architecture, overrides);
- ``usage``: what a step used (Lambda, Batch attempts, S3 requests) and what that costs;
- ``meter``: measuring this process's own usage for one step, and counting S3 requests;
- ``model``: CPU seconds per row from the file's terms, fitted to measurements
  (``coefficients.json``, written by ``python -m benchmarks.calibrate_planner``);
- ``paths``: parts that fit a time limit, and each path's wall time and price;
- ``decide``: the auto lane's choice and the budget guard;
- ``plan``: a file and a stack's settings in, the plan out (``python -m runtime plan``);
- ``stackfile``: the stack's settings from Pulumi.yaml and Pulumi.<stack>.yaml;
- ``metrics``: the job's CloudWatch embedded-metric-format line.

docs/cost.md explains the model, the defaults and how far an estimate can be from the bill.
"""
