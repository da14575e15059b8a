"""Stage: wire (conversation). The conversation of one episode, as plain data, in no wire format.

An episode keeps a list of `Turn`s. Each turn is what the model saw (`Observation`: the
text, the frame as a data URI or None, the image detail), what it answered (`Reply`:
tool calls, text, refusal, reasoning, usage, why it stopped) and what happened
(`Outcome`: actions played, reward, achievements unlocked, invalid actions, and a short
text saying so). A wire adapter (`adapters/`) renders the instructions, the earlier
turns and the current observation into a request body, and parses a response body into
a `Reply`; nothing here knows a wire format.

    conversation = Conversation(instructions, keep=1)   # keep: turns remembered
    turn = conversation.observe(Observation(text, image, "low"))
    body = adapter.body(template, conversation.window(steps=0), keep_images=0)
    turn.reply = adapter.parse(response)
    turn.outcome = Outcome(actions=("noop",), reward=0.0)

`window(steps, layout)` is the current turn plus the earlier answered turns a request
with `steps` steps of history holds, oldest first. Layout `window`: the last `steps`,
so every request drops the oldest and its prompt differs from the last one right after
the instructions. Layout `blocks`: append-only, the oldest `steps` cut at once when the
history reaches `2 * steps`, so `steps` to `2 * steps - 1` are sent and an earlier turn
is sent the same way until it is cut (a provider's prompt cache then holds all of the
last prompt but its newest turns). `keep` bounds memory (`turns_kept`): the
conversation forgets turns older than that, so an episode's memory does not grow with
its length. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Observation:
    """What the model is shown at one step."""

    text: str
    image: str | None = None  # a data URI (data:image/png;base64,...) or None
    detail: str = "low"


@dataclass(frozen=True)
class ToolCall:
    """One function call as the model wrote it; `arguments` is the JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens of one response. `output` includes `reasoning`; `input` includes `cached`."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output


@dataclass(frozen=True)
class Reply:
    """The model's answer, parsed from any wire format.

    `finish` is why it stopped in the API's own words (chat `finish_reason`, or the
    Responses `status`); `incomplete` is the reason of an incomplete response, normalised:
    `max_output_tokens` (out of budget, chat's `length`), `content_filter`, or None.
    `reasoning_items` are opaque items an API wants back on later turns (Responses
    reasoning items with their encrypted content); `empty` marks a response with no
    answer at all (chat `choices: []`, no Responses output). `logprobs` are the answer's
    token log-probabilities, `token_ids` its token ids and `prompt_token_ids` the
    prompt's, when the request asked for them and the server returned them (else None)."""

    tool_calls: tuple[ToolCall, ...] = ()
    text: str | None = None
    refusal: str | None = None
    reasoning_summary: str | None = None
    reasoning_items: tuple[dict[str, Any], ...] = ()
    usage: Usage = Usage()
    finish: str | None = None
    incomplete: str | None = None
    empty: bool = False
    logprobs: tuple[float, ...] | None = None
    token_ids: tuple[int, ...] | None = None
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened after a reply: played actions, reward, new achievements, invalid
    action names. `text` says it in a line (what a history's tool result holds); `calls`,
    if given, says it per tool call, aligned with the reply's `tool_calls`."""

    actions: tuple[str, ...] = ()
    reward: float = 0.0
    new_achievements: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        parts = [f"played {', '.join(self.actions)}" if self.actions else "no action played"]
        parts.append(f"reward {self.reward:+g}")
        if self.new_achievements:
            parts.append(f"unlocked {', '.join(self.new_achievements)}")
        if self.invalid:
            parts.append(f"invalid: {', '.join(self.invalid)}")
        return "; ".join(parts)

    def call_text(self, index: int) -> str:
        """The result of tool call number `index`, as sent back in a history."""
        return self.calls[index] if index < len(self.calls) else self.text


@dataclass
class Turn:
    observation: Observation
    reply: Reply | None = None
    outcome: Outcome | None = None


def turns_kept(steps: int, layout: str = "window") -> int:
    """The turns a conversation must remember for requests with `steps` steps of
    history in `layout`: the current one and the most earlier ones a request holds."""
    return steps * (2 if layout == "blocks" else 1) + 1


@dataclass
class Conversation:
    """An episode's instructions and turns, remembering at most `keep` turns; `seen`
    counts every turn observed, forgotten ones included."""

    instructions: str
    keep: int = 1
    turns: list[Turn] = field(default_factory=list)
    seen: int = 0

    def observe(self, observation: Observation) -> Turn:
        """Start the turn of a new step; forget turns beyond `keep`."""
        turn = Turn(observation)
        self.turns.append(turn)
        self.seen += 1
        if len(self.turns) > max(1, self.keep):
            del self.turns[: len(self.turns) - max(1, self.keep)]
        return turn

    def window(self, steps: int = 0, layout: str = "window") -> list[Turn]:
        """The current turn and the answered turns before it that a request with
        `steps` steps of history holds in `layout`, oldest first: `window` the last
        `steps`; `blocks` those since the last cut (`steps` to `2 * steps - 1`)."""
        if not self.turns:
            return []
        earlier = self.turns[:-1] if steps else []
        if layout == "blocks" and earlier:
            before = self.seen - 1  # earlier turns observed so far, forgotten ones included
            first = max(0, (before // steps - 1) * steps)  # the oldest one not cut
            earlier = earlier[max(0, first - (before - len(earlier))) :]
        answered = [t for t in earlier if t.reply is not None]
        return [*(answered if layout == "blocks" else answered[-steps:]), self.turns[-1]]
