"""Stage: config. What the eval files say, what each model takes, and the game's facts.

- `spec`: eval YAML -> frozen, validated dataclasses (`EvalSpec`, `Run`), every problem
  a one-line `SpecError` naming file, line and key (`errors`).
- `profiles` (+ `profiles.yaml`): what each model accepts; the run's settings -> what the
  model takes (pure).
- `game`: Crafter's actions and achievements, the tool's name: the words every stage shares.
- `apis`: the registered wire API names (the `wire.adapters` modules fill in the rest).
- `balrog`: BALROG's Crafter protocol as data (action names, wording, settings) and a
  run's settings under it.

May import: nothing else of the project. Every other stage may import it.
"""
