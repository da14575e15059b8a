"""Stage: data (trace). What one episode saw and did, written while it plays.

Two `on_step` callbacks of `episode.run_episode` (chain them with `chain`):

* `Filmstrip` keeps an evenly spaced sample of at most `max_frames` frames, 64x64,
  and saves them as the animated GIF the HTML report shows for the episode.
* `TraceWriter` (`--trace-dir`) writes every step of the episode:

      <trace-dir>/<eval>/<model>/seed-<n>/steps.jsonl      one JSON line per model call
      <trace-dir>/<eval>/<model>/seed-<n>/frames/0000.png  the frame seen at step 0, ...

  Each line (one per model call; a step asked again has a line per attempt) holds the
  request's `messages` exactly as sent, history included, in chat-completions form
  (whatever the wire API: its adapter converts) with each image referenced by its file
  (`frames/0003.png`, relative to steps.jsonl; a frame sent again in a later request's
  history refers to the file of the step that showed it) instead of base64, then the assistant's
  answer as the last message, plus `tools`, the other request `params`, the raw
  `response`, the model's `reasoning` summary (or null) and `reasoning_tokens`, the
  `actions` played, the `reward` of the step and `reward_total`, the
  `achievements` unlocked so far and the `new_achievements` of the step, and
  `no_tool_call` (why the answer had no usable tool call, else null), and `logprobs`,
  `token_ids`, `prompt_token_ids` (with `request.logprobs`, what the server returned of
  them, else null), and `seed_split` (the seed's split in its eval file, `train` or
  `test`; null when the file declares none). `messages` +
  `tools` is the chat fine-tuning format; `sft_examples(path)` yields them with the
  images inlined again.

Touches only the files under the directories it is given. The per-step cost is one
base64 decode, one small file write and one JSON line: frames are never re-rendered
and, for image observations, never re-encoded (the request's PNG is written as is).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..agent.env import png_bytes
from ..wire import adapters

Event = dict[str, Any]
_DATA_PNG = "data:image/png;base64,"


def episode_path(eval_name: str, model: str, seed: int) -> Path:
    """The relative path naming one episode's files: `<eval>/<model>/seed-<n>`.

    Characters other than letters, digits, `.`, `-` and `_` become `_`, so every
    model name (`local/random?seed=1`) gives one safe directory name."""
    return Path(_slug(eval_name), _slug(model), f"seed-{seed}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"


def chain(*callbacks: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """One `on_step` callback calling each given one (None entries are left out)."""
    live = [c for c in callbacks if c is not None]

    def on_step(event: Event) -> None:
        for callback in live:
            callback(event)

    return on_step


class Filmstrip:
    """A bounded, evenly spaced sample of an episode's frames, saved as an animated GIF.

    Memory stays below `max_frames` small frames however long the episode: when the
    sample is full, every other frame is dropped and the spacing doubles. Frames are
    kept zlib-compressed (lossless, about a quarter of their 12 KB at 64x64) until
    `save`: with many episodes in flight, they were most of an episode's memory.
    """

    def __init__(self, max_frames: int = 64, size: int = 64) -> None:
        if max_frames < 2:
            raise ValueError("max_frames must be at least 2")
        self.max_frames = max_frames
        self.size = size
        self._packed: list[bytes] = []
        self.stride = 1  # keep every stride-th frame seen
        self._seen = 0

    def __call__(self, event: Event) -> None:
        frame = event.get("frame")
        if frame is None or event.get("attempt"):  # a step asked again shows no new frame
            return
        if self._seen % self.stride == 0:
            self._packed.append(zlib.compress(self._small(frame).tobytes(), 1))
            if len(self._packed) > self.max_frames:
                self._packed = self._packed[::2]
                self.stride *= 2
        self._seen += 1

    @property
    def nbytes(self) -> int:
        """The bytes the kept frames take."""
        return sum(len(p) for p in self._packed)

    @property
    def frames(self) -> list[np.ndarray]:
        """The kept frames, `size` x `size` x 3 uint8, oldest first."""
        shape = (self.size, self.size, 3)
        return [np.frombuffer(zlib.decompress(p), np.uint8).reshape(shape) for p in self._packed]

    def _small(self, frame: np.ndarray) -> np.ndarray:
        if frame.shape[0] == self.size and frame.shape[1] == self.size:
            return np.ascontiguousarray(frame, dtype=np.uint8)
        image = Image.fromarray(frame).resize((self.size, self.size), Image.Resampling.BOX)
        return np.asarray(image, dtype=np.uint8)

    def save(self, path: Path, frame_ms: int = 160, last_ms: int = 1600) -> Path | None:
        """Write the GIF (looping, the last frame held longer); None if no frames."""
        frames = self.frames
        if not frames:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        # One palette for all frames (from all of them stacked) keeps colours steady and
        # the file about 40% smaller than a palette per frame. Fast octree: 0.6 ms for
        # 21 frames where median cut took 6.3 ms (of an 11 ms save, paid by every episode
        # as it ends, when all of them end together), at a mean error of 0.9 of 255 a
        # channel (median cut: 0.7).
        palette = Image.fromarray(np.concatenate(frames, axis=0)).quantize(
            colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        images = [
            Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
        ]
        durations = [frame_ms] * (len(images) - 1) + [last_ms]
        images[0].save(
            path,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
            disposal=1,
        )
        return path


class TraceWriter:
    """Writes one episode's steps.jsonl and frames/ under `directory` (replacing an
    older trace there). Use as a context manager, or call `close()`."""

    def __init__(self, directory: Path, seed_split: str | None = None) -> None:
        self.directory = Path(directory)
        self.seed_split = seed_split  # the seed's split in its eval file (None: no split)
        frames = self.directory / "frames"
        frames.mkdir(parents=True, exist_ok=True)
        for old in frames.glob("*.png"):
            old.unlink()
        self._file = open(self.directory / "steps.jsonl", "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._reward_total = 0.0
        self._unlocked: list[str] = []
        self._files: dict[str, str] = {}  # data URI -> its file, for frames sent again

    def _remember(self, url: str, name: str, most: int = 256) -> None:
        self._files[url] = name
        if len(self._files) > most:  # history sends the last few frames again, not more
            del self._files[next(iter(self._files))]

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __call__(self, event: Event) -> None:
        step = event["step"]
        adapter = event.get("adapter") or adapters.get(adapters.DEFAULT)
        request = adapter.chat_form(event["request"])  # the canonical form, whatever the API
        sent = request.get("messages", [])
        current = max((i for i, m in enumerate(sent) if m.get("role") == "user"), default=-1)
        extra = 0  # images written for this line beyond its own frame
        frame_file: str | None = None

        def by_file(part: Any, own: bool) -> Any:
            # The current observation's frame is frames/<step>.png; a frame of an
            # earlier turn (history) refers to the file written when it was current.
            nonlocal extra, frame_file
            url = part.get("image_url", {}).get("url", "") if _is_image(part) else ""
            if not url.startswith(_DATA_PNG):
                return part
            name = None if own and frame_file is None else self._files.get(url)
            if name is None:
                if own and frame_file is None:
                    name = f"frames/{step:04d}.png"
                else:
                    extra += 1
                    name = f"frames/{step:04d}-{extra}.png"
                (self.directory / name).write_bytes(base64.b64decode(url[len(_DATA_PNG) :]))
                self._remember(url, name)
            if own and frame_file is None:
                frame_file = name
            return {**part, "image_url": {**part["image_url"], "url": name}}

        messages = []
        for index, message in enumerate(sent):
            content = message.get("content")
            if isinstance(content, list):
                own = index == current
                message = {**message, "content": [by_file(p, own) for p in content]}
            messages.append(message)
        if frame_file is None and event.get("frame") is not None:  # text-only observation
            frame_file = f"frames/{step:04d}.png"
            (self.directory / frame_file).write_bytes(png_bytes(event["frame"]))
        messages.append(_assistant(adapter.chat_response(event["response"])))
        reply = event.get("reply")

        total = float(event.get("reward", 0.0))
        unlocked = list(event.get("achievements", []))
        line = {
            "step": step,
            "frame": frame_file,
            "messages": messages,
            "tools": request["tools"],
            "params": request["params"],
            "response": event["response"],
            "reasoning": reply.reasoning_summary if reply is not None else None,
            "reasoning_tokens": reply.usage.reasoning if reply is not None else 0,
            "actions": list(event.get("actions", [])),
            "reward": total - self._reward_total,
            "reward_total": total,
            "achievements": unlocked,
            "new_achievements": [a for a in unlocked if a not in self._unlocked],
            "no_tool_call": event.get("no_tool_call"),
            "seed_split": self.seed_split,
            # request.logprobs: the answer's token logprobs and ids, the prompt's ids
            "logprobs": _listed(reply.logprobs if reply is not None else None),
            "token_ids": _listed(reply.token_ids if reply is not None else None),
            "prompt_token_ids": _listed(reply.prompt_token_ids if reply is not None else None),
        }
        self._reward_total, self._unlocked = total, unlocked
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()  # a crash loses at most the step being written


def _listed(values: tuple | None) -> list | None:
    return None if values is None else list(values)


def _is_image(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") == "image_url"
        and isinstance(part.get("image_url"), dict)
    )


def _assistant(response: dict[str, Any]) -> dict[str, Any]:
    """The response's first message as a chat message: role, content and tool calls."""
    choices = response.get("choices")
    message = (
        choices[0].get("message")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict)
        else None
    )
    message = message if isinstance(message, dict) else {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if message.get("refusal"):
        out["refusal"] = message["refusal"]
    return out


def sft_examples(steps_jsonl: Path, *, include_failed: bool = False) -> Iterator[dict[str, Any]]:
    """Read a trace's steps.jsonl as fine-tuning examples: `{"messages", "tools"}`
    with every image file inlined again as a PNG data URI. Steps whose answer had no
    usable tool call are left out unless `include_failed`."""
    steps_jsonl = Path(steps_jsonl)
    with open(steps_jsonl, encoding="utf-8") as lines:
        for raw in lines:
            line = json.loads(raw)
            if line.get("no_tool_call") and not include_failed:
                continue
            yield sft_example(line, steps_jsonl.parent)


def sft_example(
    line: dict[str, Any], base: Path, read: Callable[[Path], bytes] = Path.read_bytes
) -> dict[str, Any]:
    """One trace line as `{"messages", "tools"}`, each image file (relative to `base`,
    the directory of steps.jsonl) inlined as a PNG data URI read with `read`."""
    messages = []
    for message in line["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": [_inline(p, base, read) for p in content]}
        messages.append(message)
    return {"messages": messages, "tools": line["tools"]}


def image_files(message: dict[str, Any]) -> list[str]:
    """The image files (paths relative to steps.jsonl) a trace message refers to, in order."""
    content = message.get("content")
    return [
        p["image_url"]["url"]
        for p in (content if isinstance(content, list) else [])
        if _is_image(p) and not str(p["image_url"].get("url", "")).startswith("data:")
    ]


def _inline(part: Any, base: Path, read: Callable[[Path], bytes] = Path.read_bytes) -> Any:
    if not _is_image(part) or part["image_url"].get("url", "").startswith("data:"):
        return part
    data = base64.b64encode(read(base / part["image_url"]["url"])).decode("ascii")
    return {**part, "image_url": {**part["image_url"], "url": _DATA_PNG + data}}
