"""Stage: agent. The game and the loop that plays it.

- `env`: the real `crafter` package made deterministic per seed: frames and text.
- `episode`: plays one episode (env <-> model through a wire adapter and client) and
  returns its `EpisodeResult`; `check` judges it against `expect`. Knows no pytest:
  `run_episode` works in a plain script; a run of another protocol is handed to its
  module (`protocols`: the registry).
- `balrog`: protocol `balrog`, BALROG's naive agent for Crafter (its prompt, observation
  text, history, one action per answer, feedback, settings).

May import: `config`, `wire`, and `report.metrics` (pure statistics).
"""
