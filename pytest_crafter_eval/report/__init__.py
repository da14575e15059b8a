"""Stage: report. Episode records -> summary -> reports and gates.

- `results`: the episode record and `results.jsonl`, its durable log.
- `metrics`: success rates, the Crafter score, progression, intervals (pure statistics).
- `summary`: per-model metrics and gate verdicts, computed once; the terminal and
  markdown renderings; `html`: the report page; `files`: writes the report files.
- `merge`: the records of several runs (shards) into one report.
- `paired`: differences of two sides matched by seed (sign-flip test, McNemar, the
  score's paired bootstrap), power and seeds needed (pure statistics); `plan`: the seeds
  a decision needs, from pilot runs.

May import: `config` only. Works on records (plain dicts): every report renders the summary.
"""
