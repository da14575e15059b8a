"""What one step costs with history: prompt tokens and request bytes per step.

    python benchmarks/history_tokens.py                 # history steps 0, 8, 16; images 1
    python benchmarks/history_tokens.py --steps 0,4 --images 0
    python benchmarks/history_tokens.py --layout blocks --calls 50

Plays one episode of local/heuristic per history setting (seed 0, 64x64 frames at
detail low plus the text observation, the eval defaults) over loopback HTTP, and prints per setting the mean prompt tokens the local
server reports (`usage.prompt_tokens`: about 4 characters per token, 4 per message, and
85 per image at detail low, OpenAI's figure for a 64x64 frame) and the mean JSON size of
the request, both over the steps after the history is full, with the number of images
and the share of the prompt tokens the server reports cached (its prompt cache counts as
OpenAI's: the prefix shared with an earlier request, from 1,024 tokens in steps of 128).
`--layout` is the history's (default window, the layout these figures were first
measured with).
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings

import openai

from pytest_crafter_eval.agent.episode import run_episode
from pytest_crafter_eval.config import spec
from pytest_crafter_eval.wire.client import ModelClient
from pytest_crafter_eval.wire.local import LocalServer


def measure(client, history: int, images: int, calls: int, layout: str = "window") -> dict:
    run = spec.Run(
        model="local/heuristic",
        steps=calls,
        observation=spec.Observation(),
        request=spec.Request(),
        expect=spec.Expect(),
        history=spec.History(history, min(images, history), layout),
        answer=spec.Answer(on_invalid="noop"),
    )
    rows = []

    def on_step(event):
        if event["step"] > history:  # history full from here on
            body = event["request"]
            usage = event["response"]["usage"]
            rows.append(
                (
                    usage["prompt_tokens"],
                    len(json.dumps(body).encode()),
                    json.dumps(body).count('"type": "image_url"'),
                    usage["prompt_tokens_details"]["cached_tokens"],
                )
            )

    # an eval name per setting: a prompt cache key of its own
    run_episode(run, 0, client, eval_name=f"tokens-{history}-{images}-{layout}", on_step=on_step)
    return {
        "history_steps": history,
        "images": min(images, history),
        "steps_measured": len(rows),
        "prompt_tokens": round(statistics.mean(r[0] for r in rows)),
        "request_kb": round(statistics.mean(r[1] for r in rows) / 1000, 1),
        "images_per_request": max(r[2] for r in rows),
        "cached_share": sum(r[3] for r in rows) / sum(r[0] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="0,8,16", help="history.steps values")
    parser.add_argument("--images", type=int, default=1, help="history.images")
    parser.add_argument("--calls", type=int, default=40, help="model calls per episode")
    parser.add_argument("--layout", default="window", choices=spec.LAYOUTS, help="history.layout")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with (
        LocalServer() as server,
        openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0) as sdk,
    ):
        client = ModelClient(sdk)
        print("history.steps  images  prompt tokens/step  request KB/step  images/request  cached")
        for history in (int(x) for x in args.steps.split(",")):
            row = measure(client, history, args.images, args.calls, args.layout)
            print(
                f"{row['history_steps']:>13}  {row['images']:>6}  {row['prompt_tokens']:>18}  "
                f"{row['request_kb']:>15}  {row['images_per_request']:>14}  "
                f"{100 * row['cached_share']:>5.0f}%"
            )


if __name__ == "__main__":
    main()
