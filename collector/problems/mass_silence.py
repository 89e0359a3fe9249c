"""Mass silence: when most of a customer's hosts fall silent together, one site problem.

A pure decision over a snapshot (every host of one customer, and since when each silent one
is silent) and the previous decision's ``MassSilenceState``. Each silent host gets a verdict:
part of the SITE problem, its OWN host-silence problem, or HELD (it fell silent moments ago
and a site outage may still be forming: no problem yet, for at most ``window``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from collector.problems.config import MassSilenceRules
from collector.problems.keys import ProblemKey
from collector.timefmt import as_utc, human_duration

MASS_SILENCE_VERSION = 1


class SilenceVerdict(StrEnum):
    """What a silent host's silence is part of."""

    SITE = "site"  # the customer's site problem covers it
    OWN = "own"  # its own host-silence problem
    HELD = "held"  # no problem yet: it may be part of a site outage that is forming


class SiteEventKind(StrEnum):
    """What changed for the customer's site problem."""

    SITE_SILENT = "site_silent"  # opens the site problem
    JOINED = "joined"  # hosts that fell silent later, added to it
    LEFT = "left"  # hosts pushing again while most are still silent
    SITE_RECOVERED = "site_recovered"  # no longer most: still silent hosts go on their own


@dataclass(frozen=True, slots=True)
class HostSilence:
    """One host of the customer; ``silent_since`` is None while it pushes.

    Give the time the collector marked it silent: hosts detected later then always have
    a later time, which keeps each verdict stable from one snapshot to the next.
    """

    host: str
    silent_since: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteSilence:
    """The customer's site problem: since when, and which silent hosts it covers."""

    since: datetime
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class MassSilenceState:
    """What the previous decision settled for one customer (stored as JSON)."""

    customer: str
    site: SiteSilence | None = None
    own: tuple[str, ...] = ()  # silent hosts with their own problem: they stay on their own

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for storage; ``from_json`` reads it back."""
        site = None if self.site is None else {
            "since": self.site.since.isoformat(), "members": list(self.site.members)}
        return {"version": MASS_SILENCE_VERSION, "customer": self.customer, "site": site,
                "own": list(self.own)}

    @classmethod
    def from_json(cls, data: Any) -> MassSilenceState:
        """A state back from ``to_json``; ValueError when malformed."""
        if not isinstance(data, dict) or data.get("version") != MASS_SILENCE_VERSION:
            raise ValueError("not a mass silence state of a supported version")
        try:
            site_data = data["site"]
            site = None if site_data is None else SiteSilence(
                since=as_utc(datetime.fromisoformat(site_data["since"])),
                members=_names(site_data["members"], "site.members"))
            return cls(customer=str(data["customer"]), site=site,
                       own=_names(data["own"], "own"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed mass silence state: {exc!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class HostVerdict:
    """One silent host's verdict, with the reason in words."""

    host: str
    verdict: SilenceVerdict
    silent_since: datetime
    reason: str
    held_until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteEvent:
    """A change of the site problem (key ``(customer, "*", "silence", "site")``)."""

    kind: SiteEventKind
    key: ProblemKey
    at: datetime
    hosts: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MassSilenceDecision:
    """The new state, a verdict per silent host (by name), the site's events."""

    state: MassSilenceState
    verdicts: tuple[HostVerdict, ...]
    events: tuple[SiteEvent, ...]

    def hosts(self, verdict: SilenceVerdict) -> tuple[str, ...]:
        """The silent hosts with this verdict, by name."""
        return tuple(v.host for v in self.verdicts if v.verdict is verdict)


def decide_mass_silence(
    *, customer: str, hosts: Iterable[HostSilence], previous: MassSilenceState | None,
    now: datetime, rules: MassSilenceRules,
) -> MassSilenceDecision:
    """Decide, for one customer's snapshot, which silences form one site problem."""
    now = as_utc(now)
    snapshot = _by_name(hosts)
    silent = {name: since for name, since in snapshot.items() if since is not None}
    previous = previous or MassSilenceState(customer=customer)
    run = _Decision(customer=customer, total=len(snapshot), silent=silent, now=now, rules=rules)
    for h in previous.own:
        if h in silent:
            run.own[h] = "silent on its own (decided before)"
    site = previous.site
    if site is not None:
        site = run.follow(site)
    if site is None:
        site = run.maybe_form()
    return run.decision(site)


class _Decision:
    """The working state of one ``decide_mass_silence`` call."""

    def __init__(self, *, customer: str, total: int, silent: dict[str, datetime],
                 now: datetime, rules: MassSilenceRules) -> None:
        self.customer = customer
        self.total = total
        self.silent = silent
        self.now = now
        self.rules = rules
        self.key = ProblemKey.site_silence(customer=customer)
        self.window = timedelta(seconds=rules.window)
        self.share = f"more than {rules.fraction * 100:g} % of at least {rules.min_hosts} hosts"
        self.own: dict[str, str] = {}  # host -> reason
        self.held: dict[str, tuple[datetime, str]] = {}  # host -> (until, reason)
        self.events: list[SiteEvent] = []

    def most(self, count: int) -> bool:
        """Whether ``count`` silent hosts are most of the customer's, by the rules."""
        rules = self.rules
        return (rules.enabled and self.total >= rules.min_hosts
                and count > rules.fraction * self.total)

    def event(self, kind: SiteEventKind, hosts: Iterable[str], reason: str) -> None:
        """Record a change of the site problem."""
        self.events.append(SiteEvent(kind=kind, key=self.key, at=self.now,
                                     hosts=tuple(sorted(hosts)), reason=reason))

    def follow(self, site: SiteSilence) -> SiteSilence | None:
        """The site problem goes on while most hosts are silent; later silences join it."""
        still = [m for m in site.members if m in self.silent]
        back = [m for m in site.members if m not in self.silent]
        if not self.most(len(still)):
            gone = f"; {', '.join(still)} still silent: each its own problem" if still else ""
            self.event(SiteEventKind.SITE_RECOVERED, back,
                       f"pushing again; {len(still)} of {self.total} hosts silent, "
                       f"not {self.share}{gone}")
            self.own.update(dict.fromkeys(still, "still silent when the site recovered"))
            return None
        joined = [h for h, since in self.silent.items()
                  if h not in site.members and h not in self.own and since >= site.since]
        if back:
            self.event(SiteEventKind.LEFT, back,
                       f"pushing again; {len(still)} of {self.total} hosts still silent: "
                       f"the site problem goes on")
        if joined:
            self.event(SiteEventKind.JOINED, joined, "fell silent after the site did")
        return SiteSilence(since=site.since, members=tuple(sorted((*still, *joined))))

    def maybe_form(self) -> SiteSilence | None:
        """A site problem when most hosts fell silent within the window; else hold or own."""
        candidates = sorted((since, h) for h, since in self.silent.items() if h not in self.own)
        cluster = _largest_cluster(candidates, self.window)
        if self.most(len(cluster)):
            since = min(self.silent[h] for h in cluster)
            members = sorted(h for s, h in candidates if s >= since)
            self.event(SiteEventKind.SITE_SILENT, members,
                       f"{len(cluster)} of {self.total} hosts fell silent within "
                       f"{human_duration(self.rules.window)} ({self.share}): one site "
                       f"problem instead of one per host")
            for s, h in candidates:
                if s < since:
                    self.own[h] = "silent before the site fell silent"
            return SiteSilence(since=since, members=tuple(members))
        up = self.total - len(self.silent)
        for since, h in candidates:
            near = sum(1 for other, _ in candidates if abs(other - since) <= self.window)
            if self.now < since + self.window and self.most(near + up):
                until = since + self.window
                self.held[h] = (until, f"held until {until.isoformat()}: {near} of "
                                       f"{self.total} hosts silent around it, more may follow")
            else:
                self.own[h] = (f"silent on its own: {near} of {self.total} hosts fell silent "
                               f"within {human_duration(self.rules.window)} of it, "
                               f"not {self.share}")
        return None

    def decision(self, site: SiteSilence | None) -> MassSilenceDecision:
        """The verdicts and the state to keep for the next snapshot."""
        verdicts = []
        for h, since in sorted(self.silent.items()):
            if site is not None and h in site.members:
                verdicts.append(HostVerdict(
                    host=h, verdict=SilenceVerdict.SITE, silent_since=since,
                    reason=f"part of the site problem since {site.since.isoformat()}"))
            elif h in self.held:
                until, reason = self.held[h]
                verdicts.append(HostVerdict(host=h, verdict=SilenceVerdict.HELD,
                                            silent_since=since, reason=reason,
                                            held_until=until))
            else:
                verdicts.append(HostVerdict(host=h, verdict=SilenceVerdict.OWN,
                                            silent_since=since, reason=self.own[h]))
        state = MassSilenceState(customer=self.customer, site=site,
                                 own=tuple(sorted(h for h in self.own if h in self.silent)))
        return MassSilenceDecision(state=state, verdicts=tuple(verdicts),
                                   events=tuple(self.events))


def _largest_cluster(candidates: list[tuple[datetime, str]], window: timedelta) -> set[str]:
    """The most hosts whose silences began within ``window`` of each other (earliest wins)."""
    best: list[tuple[datetime, str]] = []
    end = 0
    for start, (since, _) in enumerate(candidates):
        end = max(end, start)
        while end < len(candidates) and candidates[end][0] - since <= window:
            end += 1
        if end - start > len(best):
            best = candidates[start:end]
    return {h for _, h in best}


def _by_name(hosts: Iterable[HostSilence]) -> dict[str, datetime | None]:
    snapshot: dict[str, datetime | None] = {}
    for h in hosts:
        if h.host in snapshot:
            raise ValueError(f"host {h.host!r} appears twice in the snapshot")
        snapshot[h.host] = None if h.silent_since is None else as_utc(h.silent_since)
    return snapshot


def _names(value: Any, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field_name}: must be a list of host names")
    return tuple(value)
