"""Stage: data. What episodes leave behind for training.

- `trace`: per-episode step traces (`--trace-dir`) and the report's GIFs.
- `export`: traces -> fine-tuning files (OpenAI, hf), split and manifest.

May import: `config`, `wire`, `agent`.
"""
