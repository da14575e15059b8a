"""Stage: data (rollouts). `crafter-eval export --format rollouts`: one JSON line per episode,
for RL trainers that learn from recorded rollouts.

    crafter-eval export TRACE_DIR --format rollouts --out DIR [--results results.jsonl]

Each line of train.jsonl / val.jsonl (episodes split as export splits them; every step
of a kept episode is written, the step filters do not apply) is `ROLLOUT` 1:

    rollout        1 (this format's version)
    eval, model, seed, trace (`<eval>/<model>/seed-<n>`, the directory under TRACE_DIR)
    seed_split     train | test | null (the eval file declares no seed split)
    fingerprint    the run's settings fingerprint (from --results), else null
    outcome, end   from --results, else null
    tools          the tools offered (chat form), from the first step
    return         the sum of the steps' rewards (never a running total)
    achievements   unlocked by the end, in order
    steps          one per model call (a step asked again has one per attempt):
      step, attempt      the episode step and the attempt (0, or the re-ask)
      messages           the request's messages as sent, chat form, each image a file
                         under DIR/images/ (content-addressed, like --format hf)
      completion         the assistant message answered (chat form)
      actions            the actions played;  reward: the step's own reward
      new_achievements   unlocked by this step;  done: true on the episode's last step
      no_tool_call       null, or why the answer had no usable tool call
      logprobs, token_ids, prompt_token_ids   the model's token log-probabilities and
                         token ids when the run asked for them (request.logprobs) and
                         the server returned them, else null

`tests/data/rollout.schema.json` is the JSON Schema of a line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import Episode, Step

ROLLOUT = 1


def rollout(
    episode: Episode,
    image: Callable[[Path, str], str],
    step_lines: Callable[[Step], dict[str, Any]],
) -> dict[str, Any]:
    """One episode as a rollout line: `image(episode directory, url)` gives the path
    (under DIR) an image file is written to; `step_lines(step)` reads a step's trace
    line (export's `Episode.line`)."""
    record = episode.record or {}
    steps: list[dict[str, Any]] = []
    tools: list[Any] | None = None
    attempts: dict[int, int] = {}
    last = len(episode.steps) - 1
    for step in episode.steps:
        line = step_lines(step)
        if tools is None:
            tools = line.get("tools") or []
        *sent, answer = line["messages"]
        attempt = attempts.get(step.step, 0)
        attempts[step.step] = attempt + 1
        steps.append(
            {
                "step": step.step,
                "attempt": attempt,
                "messages": [_with_files(m, episode.directory, image) for m in sent],
                "completion": answer,
                "actions": list(step.actions),
                "reward": step.reward,
                "new_achievements": list(step.new_achievements),
                "done": step.index == last,
                "no_tool_call": line.get("no_tool_call"),
                "logprobs": line.get("logprobs"),
                "token_ids": line.get("token_ids"),
                "prompt_token_ids": line.get("prompt_token_ids"),
            }
        )
    return {
        "rollout": ROLLOUT,
        "eval": episode.eval,
        "model": episode.model,
        "seed": episode.seed,
        "trace": episode.trace,
        "seed_split": episode.seed_split,
        "fingerprint": record.get("fingerprint"),
        "outcome": record.get("outcome"),
        "end": record.get("end"),
        "tools": tools or [],
        "return": episode.reward,
        "achievements": list(episode.achievements),
        "steps": steps,
    }


def _with_files(message: dict[str, Any], base: Path, image: Callable[[Path, str], str]) -> dict:
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = image(base, part["image_url"]["url"])
            part = {**part, "image_url": {**part["image_url"], "url": url}}
        parts.append(part)
    return {**message, "content": parts}
