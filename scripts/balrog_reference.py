"""Record the request bodies BALROG's own agent code sends for Crafter (tests/data).

    python scripts/balrog_reference.py --balrog-path /path/to/BALROG \
        --seeds 0,1,2 --steps 50 --out tests/data/balrog_reference.json

Runs BALROG's evaluator (`balrog.evaluator.Evaluator.run_episode`) with its naive agent
(`balrog.agents.AgentFactory` on BALROG's own `balrog/config/config.yaml`), its history
prompt builder, its OpenAI client wrapper and its Crafter language wrapper, in text mode
(`agent.max_image_history=0`, BALROG's default) and in vision mode (`=1`). Nothing of
BALROG's code is changed or stubbed; two things around it are:

* the model is a loopback HTTP server (127.0.0.1) speaking the chat completions API: it
  records each request body the OpenAI SDK sends and answers with a fixed script of
  completions (`ANSWERS`: valid actions, and answers BALROG rejects or rewrites), so no
  LLM is needed and the run is reproducible;
* the Crafter env BALROG wraps is this project's deterministic one
  (`pytest_crafter_eval.agent.env._Env`, a `crafter.Env` subclass of crafter 1.8.3), built
  for the episode's seed, in place of the `crafter.Env(seed=None)` BALROG's
  `make_crafter_env` builds: stock Crafter draws that world's seed from numpy's global
  RNG, so BALROG's worlds do not follow its seed setting (see README, "Settings
  comparable with BALROG"). `--upstream-check` also plays the same answers on a stock
  `crafter.Env(seed=seed)` and records the first step whose observation text differs.

BALROG needs only what its Crafter path imports, in a venv of its own: crafter==1.8.3,
opensimplex==0.3, gym==0.23.0, gymnasium, scipy, pillow, numpy, omegaconf, tqdm,
balrog-nle (balrog/environments/wrappers imports nle) and openai, anthropic and
google-genai (balrog/client.py imports all three); run it with that venv's python. This script is the project's own code; BALROG is imported from
`--balrog-path` and nothing of it is stored: the output holds the bodies only.

Output (compact JSON): `messages` is a table of the distinct messages; each recorded
request is its settings (`model`, `max_tokens`, `temperature`) and the indexes of its
messages. An image part's data URI is replaced by `{"png_sha256", "rgb_sha256", "size"}`
(the PNG bytes, and the decoded RGB pixels, as the test compares pixels).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The completions the model answers, in order (cycled). Between the valid actions are
# answers BALROG treats specially: non-letters are filtered out ("Do." plays Do, "42"
# becomes "" and is left out of the history), anything else not exactly an action name
# plays Noop with BALROG's feedback at the top of the next observation.
ANSWERS = [
    "Move West",
    "Do",
    "Move North",
    "move west",
    "Do.",
    "Move East",
    "42",
    "Move South",
    "1. Move East",
    "Do",
    "Place Table",
    "Noop",
    "Make Wood Pickaxe",
    "I choose: Move West",
    "Move North\n",
    "Sleep",
    "Do",
    "Move West",
    "Collect Wood",
    "Move South",
    "Do",
    "Place Stone",
    "Move East",
]


class _Model(BaseHTTPRequestHandler):
    """Chat completions on loopback: keeps each body, answers the next scripted text."""

    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        text = ANSWERS[(len(srv.bodies) + srv.offset) % len(ANSWERS)]
        srv.bodies.append(body)
        reply = {
            "id": f"chatcmpl-{len(srv.bodies)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    bodies: list
    offset: int


def _image_facts(url: str) -> dict:
    from PIL import Image

    png = base64.b64decode(url.split(",", 1)[1])
    image = Image.open(io.BytesIO(png)).convert("RGB")
    return {
        "png_sha256": hashlib.sha256(png).hexdigest(),
        "rgb_sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "size": list(image.size),
    }


def _compact(body: dict, table: list, index: dict) -> dict:
    ids = []
    for message in body["messages"]:
        parts = []
        for part in message["content"]:
            if part["type"] == "image_url":
                part = {"type": "image_url", "image": _image_facts(part["image_url"]["url"])}
            parts.append(part)
        message = {**message, "content": parts}
        key = json.dumps(message, sort_keys=True)
        if key not in index:
            index[key] = len(table)
            table.append(message)
        ids.append(index[key])
    rest = {k: v for k, v in body.items() if k != "messages"}
    return {**rest, "messages": ids}


def _project_env():
    sys.path.insert(0, str(ROOT))
    from pytest_crafter_eval.agent import env

    return env


def _episode(balrog_path: Path, seed: int, steps: int, vision: bool, model: str, stock: bool):
    """BALROG's run_episode for one seed; returns (request bodies, episode log)."""
    import balrog.environments.crafter.crafter_env as crafter_env
    from balrog.agents import AgentFactory
    from balrog.evaluator import Evaluator
    from omegaconf import OmegaConf

    config = OmegaConf.load(balrog_path / "balrog/config/config.yaml")
    config.envs.names = "crafter"
    config.envs.env_kwargs.seed = seed
    config.eval.num_workers = 1
    config.eval.max_steps_per_episode = steps
    config.agent.max_image_history = 1 if vision else 0
    config.client.client_name = "openai"
    config.client.model_id = model
    config.client.max_retries = 1

    import crafter

    ours = _project_env()

    def make(area, view, size, reward, seed=None):  # what make_crafter_env passes
        assert tuple(area) == (64, 64) and tuple(view) == (9, 9) and reward is True
        if stock:
            return crafter.Env(area=area, view=view, size=size, reward=reward, seed=episode_seed)
        return ours._Env(episode_seed, int(size[0]), 10000)

    episode_seed = seed
    crafter_env.crafter = types.SimpleNamespace(Env=make)
    server = _Server(("127.0.0.1", 0), _Model)
    server.bodies, server.offset = [], seed
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{server.server_address[1]}/v1"
    os.environ["OPENAI_API_KEY"] = "sk-loopback"
    try:
        with tempfile.TemporaryDirectory() as out:
            evaluator = Evaluator("crafter", config, original_cwd=out, output_dir=out)
            agent = AgentFactory(config).create_agent()
            with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
                log = evaluator.run_episode("default", agent, episode_idx=0)
    finally:
        server.shutdown()
    assert len(server.bodies) == steps, (len(server.bodies), steps)
    return server.bodies, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--balrog-path", type=Path, required=True, help="a BALROG checkout")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/data/balrog_reference.json")
    parser.add_argument(
        "--upstream-check",
        action="store_true",
        help="also play stock crafter.Env(seed) and record where its observations differ",
    )
    args = parser.parse_args()
    balrog_path = args.balrog_path.resolve()
    sys.path.insert(0, str(balrog_path))
    seeds = [int(s) for s in args.seeds.split(",")]
    commit = subprocess.run(
        ["git", "-C", str(balrog_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not commit:
        parser.error(f"--balrog-path {balrog_path} is no git checkout (its commit is recorded)")
    from importlib.metadata import version

    table: list = []
    index: dict = {}
    episodes = []
    for vision in (False, True):
        for seed in seeds:
            bodies, log = _episode(balrog_path, seed, args.steps, vision, args.model, False)
            episode = {
                "seed": seed,
                "vision": vision,
                "answers_offset": seed,
                "progression": log["progression"],
                "achievements": sorted(k for k, v in (log["achievements"] or {}).items() if v),
                "failed_candidates": log["failed_candidates"],
                "requests": [_compact(b, table, index) for b in bodies],
            }
            if args.upstream_check and not vision:
                stock, _ = _episode(balrog_path, seed, args.steps, vision, args.model, True)
                differ = [i for i, (a, b) in enumerate(zip(bodies, stock)) if a != b]
                episode["stock_crafter_first_difference"] = differ[0] if differ else None
            episodes.append(episode)
    data = {
        "provenance": {
            "what": "request bodies BALROG's naive agent sends for Crafter, recorded by "
            "scripts/balrog_reference.py from BALROG's own code on this project's "
            "deterministic env; the model answers ANSWERS in order from answers_offset",
            "balrog_repository": "github.com/balrog-ai/BALROG",
            "balrog_commit": commit,
            "crafter": version("crafter"),
            "openai_sdk": version("openai"),
            "pillow": version("pillow"),
            "python": sys.version.split()[0],
            "command": "python scripts/balrog_reference.py --balrog-path BALROG "
            f"--seeds {args.seeds} --steps {args.steps} --model {args.model}"
            + (" --upstream-check" if args.upstream_check else ""),
        },
        "answers": ANSWERS,
        "messages": table,
        "episodes": episodes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {args.out}: {len(episodes)} episodes, {len(table)} distinct messages")


if __name__ == "__main__":
    main()
