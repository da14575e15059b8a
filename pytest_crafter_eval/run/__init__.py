"""Stage: run. The pytest edge: the only stage that imports pytest.

- `plugin`: the pytest hooks (the `pytest11` entry point); `items`: eval files and their
  episode and payload items; `settings`: command-line and ini settings, checked once.
- `scheduling`, `inflight`: episodes in flight per process; `runstate`: the run directory
  shared by xdist workers (slots, budgets, rate-limit pacing); `shard`: `--shard K/N`;
  `progress`: the controller's live progress line; `reach`: a model whose endpoint does
  not answer has its remaining episodes skipped.

May import: every stage.
"""
