"""Stage: wire (local models). The loopback server's prompt cache, counted as OpenAI counts its own.

OpenAI caches prompts of 1,024 tokens or more: a request whose prompt begins with tokens
an earlier request (same model, same `prompt_cache_key`) began with is billed that prefix
as `cached_tokens`, from 1,024 tokens on in steps of 128. `PromptCache` does the same on
the local models' token estimate (`models.prompt_tokens`): it remembers, per scope (the
requested model and the cache key), a hash of every prefix of 1,024 + 128k tokens it has
seen (a chain over 128-token blocks, so a hash names its whole prefix), and answers a
prompt with the longest such prefix it shares. Memory is bounded: past `capacity` hashes
the least recently used are forgotten, as a provider evicts idle prefixes. Thread-safe;
no I/O.

    cache = PromptCache()
    cache.cached("gpt-4o-mini\\0key", prompt_tokens(body))   # 0, 1024, 1152, ...
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

MIN_TOKENS = 1024  # shorter prompts are not cached
STEP = 128  # cache hits grow in steps of this many tokens
CAPACITY = 200_000  # prefix hashes remembered (about 30 MB at most)


class PromptCache:
    """Prefixes seen so far, per scope; `cached` answers and remembers a prompt."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, scope: str, tokens: Sequence[str]) -> int:
        """The length of the longest prefix of `tokens` (1,024 + 128k tokens, else 0)
        that an earlier prompt of `scope` began with; this prompt's prefixes are
        remembered for later ones."""
        chain = list(prefix_hashes(scope, tokens))
        best = 0
        with self._lock:
            for end, digest in chain:
                if digest not in self._seen:
                    break
                best = end
            for _, digest in chain:
                self._seen[digest] = None
                self._seen.move_to_end(digest)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return best

    def __len__(self) -> int:
        return len(self._seen)


def prefix_hashes(scope: str, tokens: Sequence[str]):
    """(end, hash of tokens[:end] in `scope`) for end = 1,024, 1,152, ... <= len(tokens)."""
    digest = hashlib.blake2b(scope.encode(), digest_size=16).digest()
    for end in range(STEP, len(tokens) + 1, STEP):
        block = "\0".join(tokens[end - STEP : end]).encode()
        digest = hashlib.blake2b(digest + block, digest_size=16).digest()
        if end >= MIN_TOKENS:
            yield end, digest
