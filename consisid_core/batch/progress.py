"""Progress display of a batch: an overall bar and one bar per server (plain log lines when off)."""

from __future__ import annotations

import threading


class ProgressDisplay:
    """tqdm bars: overall on top, one per server below (no-ops, and plain printed lines, when disabled)."""

    def __init__(self, total: int, done: int, servers: list[str], enabled: bool):
        self.enabled = enabled
        self._lock = threading.Lock()
        if not enabled:
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.overall = tqdm(total=total, initial=done, desc="batch", unit="job", position=0, dynamic_ncols=True)
        self.per_server = {
            s: tqdm(total=1, desc=s, unit="step", position=i + 1, leave=False, dynamic_ncols=True) for i, s in enumerate(servers)
        }

    def job_started(self, server: str, name: str) -> None:
        if self.enabled:
            with self._lock:
                bar = self.per_server[server]
                bar.reset(total=1)
                bar.set_description(f"{name} @ {server}")

    def step(self, server: str, value: int, maximum: int, node: str | None) -> None:
        if self.enabled and maximum:
            with self._lock:
                bar = self.per_server[server]
                if bar.total != maximum:
                    bar.reset(total=maximum)
                bar.n = min(value, maximum)
                bar.set_postfix_str(f"node {node}" if node else "", refresh=False)
                bar.refresh()

    def job_done(self) -> None:
        if self.enabled:
            with self._lock:
                self.overall.update(1)

    def write(self, text: str) -> None:
        if self.enabled:
            self._tqdm.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.enabled:
            for bar in self.per_server.values():
                bar.close()
            self.overall.close()
