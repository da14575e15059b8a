"""Stage: wire. Talking to a model: requests, responses, and what they carry.

- `conversation`: an episode's turns as plain data (observation, parsed reply, outcome).
- `tools`, `answers`: the one tool the model calls; its calls, native or written as text,
  found, parsed and counted; why a reply had none.
- `adapters/`: one module per wire API (chat, responses) behind the `Adapter` protocol.
- `client`: the `openai` SDK client, keys, timeouts, retries, errors; `cassette`: record
  and replay; `payload`, `images`, `redact`: bodies and output made safe to show.
- `local/`: the built-in local models and their loopback server (a provider like any other).

May import: `config`. Knows no episode, no pytest, no report.
"""
