"""The attempt journal: which claimed sends this process started to hand to a provider,
and, for SMTP, which it started to end.

The rule. SMTP relays (and SES) do not dedupe, so a send left `sending` by a crash may
have reached the relay, and sending it again could deliver it twice. But most of a crashed
batch never left the process: a claim takes up to `delivery.BATCH` sends, while an SMTP
pool has one transaction in flight per connection. So every process that delivers keeps
an append-only journal file, `<data>/delivery-journal/<name>`, and writes, per claim
(`token(send, claimedAt)`), the stages of `EmailMessage.on_attempt` (`line`):
- `handed`: right before a provider that cannot tell more (SES) is handed the message;
- `mail`: right before MAIL of the SMTP transaction that carries it (`smtp.py`);
- `end`: right before the write that carries that transaction's end of DATA (`\r\n.\r\n`).
A claim records the journal's name (`claimedBy`). Recovery (`verdicts`), for a send
`sending` past its lease and claimed by a journal it can read, knows:
- a `handed` line: the provider may have the message: DELIVERY_UNCERTAIN, never resent;
- else an `end` line: the relay most likely has it (`ENDED`, below);
- else (no line, or `mail` only): the relay cannot have accepted it: back to `queued`,
  sent once more. A relay takes a message only at the end of its DATA, and discards a
  transaction whose end never came when the connection closes (RFC 5321 §4.1.1.4, §3.8).

ENDED. The end of DATA was written (to the kernel, or to the transport's buffer). With
pipelining every reply but the last was read before it, so the only reply it can await
is the end's own: the relay took the message unless one of these happened, none of which
resends anything (a recipient is at worst skipped, never doubled):
- the kill came while the end was still in the process (a large message whose tail did
  not fit the socket's send buffer stays in the transport's buffer and dies with it);
- the kernel reset the connection instead of sending what it held: it does so when a
  socket is closed with unread bytes, here only a reply the relay sent after it had the
  whole message (its answer to the end), or an unsolicited one (a 421 of a relay going
  down), which is the window left;
- the relay refused the message at its end (5xx), or lost it.
Such a send is recorded `sent`, its errorCode DELIVERY_UNCONFIRMED (the relay's answer,
if it was read, was not recorded: most are sends whose 250 came but whose batch's record
had not committed), and counted as sent: so the counters equal what reached the relay,
as far as can be known, and a campaign's `sent` equals a sink's count of its messages.

Why it holds. A `write()` returns once the kernel has the bytes; kill -9 of the writer
loses nothing the kernel has (no fsync needed: the page cache is the kernel's), and the
provider is called (the terminator written) only after it returned. An OS crash or a
power loss can lose them, so the header names the boot
(`/proc/sys/kernel/random/boot_id`): a journal of another boot is unknown. A journal is
only believed when it is
- of this machine's current boot, with an intact header, and every line complete (a
  torn last line: unknown);
- found in this process's data folder (on PostgreSQL the claim may come from a node on
  another machine: its journal is not here, so unknown);
- of a dead process: the writer holds an exclusive `flock` on its file for its whole life
  (the kernel releases it when the process dies, kill -9 included); a live writer may
  still write, so it is not read. Its sends past the lease are `held` instead (below).
Unknown means DELIVERY_UNCERTAIN, never resent. A wrong "attempted" or "ended" only
costs a skipped recipient; a wrong "not ended" would cost a duplicate, and cannot happen
while the `end` line is written before the end of DATA.

A live writer (issue 17). A send past its lease whose journal's writer is alive here (its
`flock` held, its header of this boot) may still be delivered: a loaded machine or a slow
relay outran the lease renewal (`leases.py`). Recovery leaves it (`held`) for a later look,
and the writer's own recovery decides it: this process's journal knows the claims its
delivery runs hold (`Journal.hold`; while a claim mutation is under way, all of them);
one no run holds any more (its run ended in an error) is read from the journal itself,
as a dead writer's would be.

Cost: two `os.write`s of ~45 bytes per SMTP message (unbuffered, O_APPEND), no fsync.
Clean-up: each process start opens a new journal (a unique name); `sweep` deletes a dead
process's journal once it has been seen dead for a lease and no stalled send names it
(the sends it claimed are all past their lease by then, so recovery has read it).
A journal that is gone when needed is unknown: safe.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from owlat.app.lib import instance
from owlat.app.lib.email_providers.types import AttemptStage
from owlat.runtime import ActionCtx, FunctionReference, v

FOLDER = "delivery-journal"
MAGIC = "owlat-delivery-journal 1"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# what recovery makes of a claim (module docstring); "uncertain" also when unknown
Verdict = Literal["unattempted", "ended", "uncertain"]


def boot_id() -> str | None:
    """This machine's boot id, or None where there is none (then no journal is kept)."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def token(send_id: str, claimed_at: float) -> str:
    """What names `send_id` under its claim at `claimed_at` in a journal (and is its
    `handed` line)."""
    return f"{send_id} {int(claimed_at)}"


def line(claim: str, stage: AttemptStage) -> str:
    """The line that says: the claim (`token`) reached `stage` (module docstring)."""
    return claim if stage == "handed" else f"{claim} {stage}"


def verdict(lines: frozenset[str], claim: str) -> Verdict:
    """What a known journal's `lines` say of the claim (`token`; module docstring)."""
    if line(claim, "handed") in lines:
        return "uncertain"
    return "ended" if line(claim, "end") in lines else "unattempted"


class Journal:
    """This process's journal file, locked for the process's life (module docstring)."""

    def __init__(self, folder: Path, boot: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"{boot[:8]}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = folder / self.name
        self._broken = False
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(self._fd, f"{MAGIC} boot={boot} pid={os.getpid()}\n".encode())
        self._holding = threading.Lock()
        self._held: collections.Counter[str] = collections.Counter()
        self._claiming = 0

    def note(self, line: str) -> None:
        """Append `line`; `OSError` (and nothing is sent) when it cannot be written whole.
        After a short write (a full disk) the journal refuses every later line: a line
        completed by a later write would hide a token, so the torn tail must stay torn
        (recovery then reads the journal as unknown)."""
        if self._broken:
            raise OSError(f"the attempt journal {self.path} is torn")
        data = (line + "\n").encode()
        try:
            written = os.write(self._fd, data)
        except OSError:
            self._broken = True
            raise
        if written != len(data):
            self._broken = True
            raise OSError(f"the attempt journal {self.path} is torn")

    def noter(self, send_id: str, claimed_at: float) -> Callable[[AttemptStage], None]:
        """What a provider calls at each stage of the message of this claim
        (`EmailMessage.on_attempt`)."""
        claim = token(send_id, claimed_at)
        return lambda stage: self.note(line(claim, stage))

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Around a claim mutation of this process: until it answers (and its claims are
        `hold`), every claim of this journal counts as held."""
        with self._holding:
            self._claiming += 1
        try:
            yield
        finally:
            with self._holding:
                self._claiming -= 1

    def hold(self, tokens: Iterable[str]) -> None:
        """A delivery run of this process works on these claims (`token`s)."""
        with self._holding:
            self._held.update(tokens)

    def release(self, tokens: Iterable[str]) -> None:
        """A delivery run is done with these claims (`hold` before)."""
        with self._holding:
            self._held.subtract(tokens)
            self._held = +self._held  # drop the ones at zero

    def holds(self, line: str) -> bool:
        """Whether a delivery run of this process may still work on the claim `line`."""
        with self._holding:
            return self._claiming > 0 or self._held[line] > 0

    def entries(self) -> frozenset[str] | None:
        """The tokens written so far (this process is the writer: no run holds the claims
        asked about, so none of their lines is still to come; a line being written for
        another claim is left out); None when a write was torn."""
        if self._broken:
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        return _parsed(data[: data.rfind(b"\n") + 1])

    def close(self) -> None:
        os.close(self._fd)


_lock = threading.Lock()
_journals: dict[Path, Journal | None] = {}


def opened(data_dir: Path) -> Journal | None:
    """The journal of this process in `data_dir` (opened at the first call), or None
    where the machine has no boot id."""
    folder = Path(data_dir) / FOLDER
    with _lock:
        if folder not in _journals:
            boot = boot_id()
            _journals[folder] = None if boot is None else Journal(folder, boot)
        return _journals[folder]


def entries(path: Path) -> frozenset[str] | None:
    """The tokens of the journal at `path`, or None when it is unknown (module
    docstring: missing, unreadable, of another boot, torn, or its writer alive)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return None  # its writer is alive
        data = b""
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    return _parsed(data)


def _parsed(data: bytes) -> frozenset[str] | None:
    """The tokens of a journal's bytes; None when torn or not of this boot."""
    text = data.decode("utf-8", "replace")
    if not text.endswith("\n"):
        return None  # torn (or empty)
    header, *lines = text[:-1].split("\n")
    return frozenset(lines) if _of_this_boot(header) else None


def _of_this_boot(header: str) -> bool:
    if not header.startswith(MAGIC + " "):
        return False
    fields = dict(part.partition("=")[::2] for part in header[len(MAGIC) + 1 :].split())
    return fields.get("boot") == boot_id()


def claims_arg(table: str) -> Any:
    """The validator of a list of claims (`{sendId, claimedAt}`, sends of `table`): a
    recovery mutation's `unattempted`, `ended` and `held`, a renewal's claims."""
    return v.array(v.object({"sendId": v.id(table), "claimedAt": v.number()}))


async def recover(
    ctx: ActionCtx,
    stalled: FunctionReference,
    recover_stalled: FunctionReference,
    args: Any,
    stalled_args: Any = None,
) -> Any:
    """A recovery action's work, run where the journals are: the `stalled` query's sends
    (`{sendId, claimedAt, claimedBy}`; called with `stalled_args`) read against this
    process's data folder, and the `recover_stalled` mutation told which of them were
    never attempted or whose SMTP transaction never ended (`unattempted`), which were
    ended (`ended`) and which a live writer may still deliver (`held`); its answer."""
    rows = await ctx.run_query(stalled, stalled_args or {})
    data_dir = instance.current().data_dir
    found = verdicts(data_dir, rows)
    return await ctx.run_mutation(
        recover_stalled,
        {
            **args,
            "unattempted": found["unattempted"],
            "ended": found["ended"],
            "held": held(data_dir, rows),
        },
    )


def verdicts(data_dir: Path, rows: Iterable[Mapping[str, Any]]) -> dict[Verdict, list[Any]]:
    """Of `rows` (`{sendId, claimedAt, claimedBy}` of sends `sending` past their lease),
    the claims (`{sendId, claimedAt}`) by `verdict`, those whose journal is known (this
    process's own journal: for the claims none of its runs holds); the others are
    "uncertain"."""
    folder = Path(data_dir) / FOLDER
    own = _own(folder)
    read: dict[str, frozenset[str] | None] = {}
    found: dict[Verdict, list[Any]] = {"unattempted": [], "ended": [], "uncertain": []}
    for row in _named(rows):
        name, claim = row["claimedBy"], token(row["sendId"], row["claimedAt"])
        if own is not None and name == own.name and own.holds(claim):
            continue
        if name not in read:
            read[name] = own.entries() if own and name == own.name else entries(folder / name)
        lines = read[name]
        found["uncertain" if lines is None else verdict(lines, claim)].append(
            {"sendId": row["sendId"], "claimedAt": row["claimedAt"]}
        )
    return found


def held(data_dir: Path, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Of `rows` (as for `verdicts`), those a live writer on this machine may still
    deliver (module docstring): claims a run of this process holds, and every claim of
    another live process's journal of this boot (its own recovery decides them)."""
    folder = Path(data_dir) / FOLDER
    own = _own(folder)
    alive: dict[str, bool] = {}
    found = []
    for row in _named(rows):
        name = row["claimedBy"]
        if own is not None and name == own.name:
            keep = own.holds(token(row["sendId"], row["claimedAt"]))
        else:
            keep = alive[name] if name in alive else alive.setdefault(name, _alive(folder / name))
        if keep:
            found.append({"sendId": row["sendId"], "claimedAt": row["claimedAt"]})
    return found


def _own(folder: Path) -> Journal | None:
    with _lock:
        return _journals.get(folder)


def _named(rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """The rows whose `claimedBy` can name a journal in the folder."""
    for row in rows:
        name = row.get("claimedBy")
        if name and "/" not in name and not name.startswith("."):
            yield row


_dead_since: dict[Path, float] = {}


def sweep(data_dir: Path, named: Iterable[str], lease_ms: float) -> list[str]:
    """Delete the journals of dead processes seen dead for `lease_ms` and not `named` by
    a stalled send (module docstring); the names deleted."""
    folder = Path(data_dir) / FOLDER
    keep = set(named)
    own = {journal.path for journal in _journals.values() if journal is not None}
    now = time.monotonic()
    deleted: list[str] = []
    try:
        paths = list(folder.iterdir())
    except OSError:
        return deleted
    for path in paths:
        if path in own or path.name in keep or not _dead(path):
            _dead_since.pop(path, None)
            continue
        if now - _dead_since.setdefault(path, now) >= lease_ms / 1000.0:
            path.unlink(missing_ok=True)
            _dead_since.pop(path, None)
            deleted.append(path.name)
    return deleted


def _dead(path: Path) -> bool:
    return _locked(path) is False


def _alive(path: Path) -> bool:
    """Whether the journal's writer is alive on this machine: its lock held, its header
    of this boot."""
    if not _locked(path):
        return False
    try:
        with path.open("rb") as file:
            header = file.readline(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return header.endswith("\n") and _of_this_boot(header[:-1])


def _locked(path: Path) -> bool | None:
    """Whether a process holds the journal's lock; None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
