"""A client of Request Tracker 5's REST2 API: the few calls the ticket mirror needs.

One ``httpx.Client`` per ``RtClient``, authenticated with the connector user's token
(``Authorization: token ...``) or its password (basic authentication). Every failure is
an ``RtError`` that says whether retrying can help (``permanent``) and never contains the
token or the password.

What RT 5.0 does that shapes this module:

- An update (``PUT /ticket/<id>``) answers 200 even when RT refuses a change; the refusal
  is one of the messages in the answer. Setting a value the ticket already has answers an
  empty list, and a field RT does not know is ignored in silence, so ``update`` accepts
  only the ticket fields it knows.
- A custom field RT cannot set at creation (unknown name, missing right) is dropped in
  silence too, so ``create`` reads the ticket back and fails unless the key is on it.
- A custom field search (``CF.{...} = '...'``) ignores case, so ``find_by_key`` compares
  the values it gets back exactly.
- Searches by a non-superuser answer no ``total``: pages are read until one is short.
- TicketSQL reads a date such as ``LastUpdated >= '2026-11-26 12:00:00'`` in the
  searching user's time zone (the user's own setting, else RT's ``$Timezone``, else the
  RT host's). ``changed_since`` writes the date in the user's own time zone when it has
  one, and in UTC otherwise (``check`` reports a user without one); the connector user of
  ``deploy/rt/watchkeeper.initialdata`` has UTC.
- Dates in answers are UTC (``2026-11-26T12:00:00Z``); priorities come back as strings.
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from collector.notify.senders import SendError, read_secret, tls_context
from collector.settings import RequestTrackerSettings

PAGE_SIZE = 100  # REST2's largest page
# Ticket fields ``update`` may set (RT ignores any other name without a word).
UPDATABLE_FIELDS = frozenset({
    "Subject", "Status", "Priority", "InitialPriority", "FinalPriority", "Queue", "Owner",
    "Due", "Starts", "Started", "TimeEstimated", "TimeWorked", "TimeLeft",
})
# The words of RT's answers to a change it made, or one it did not need to make.
_DONE_MARKERS = (" changed from ", " changed to ", " set to ", "already the current value")
_NOTE_TYPES = frozenset({"Comment", "Correspond"})
_CHECK_KEY = "watchkeeper check: no ticket has this key"


class RtError(Exception):
    """A call to RT failed; ``permanent``: retrying the same call cannot help."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class KeyFieldMissing(RtError):
    """RT created ticket ``rt_id`` but dropped its key field (a setup fault): the ticket is
    there and is to be used, but a retry could not find it by the key."""

    def __init__(self, message: str, *, rt_id: int) -> None:
        super().__init__(message, permanent=True)
        self.rt_id = rt_id


@dataclass(frozen=True)
class Txn:
    """One transaction of a ticket's history."""

    id: int
    type: str  # RT's transaction type: Create, Comment, Correspond, Status, Set, ...
    creator: str  # the RT user name
    created: float  # epoch seconds (UTC)
    subject: str  # for Comment/Correspond the message's subject
    field: str | None  # for Set and the like: which field changed
    old: str | None
    new: str | None


def ticket_sql_string(value: str) -> str:
    """``value`` as a quoted TicketSQL string (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _custom_field_term(name: str) -> str:
    if any(ch in name for ch in "{}'\"\\\n"):
        raise RtError(f"key_field {name!r}: braces, quotes and backslashes cannot be "
                      "searched in TicketSQL", permanent=True)
    return f"CF.{{{name}}}"


def _epoch(rt_time: str) -> float:
    """``2026-11-26T12:00:00Z`` (REST2's UTC) as epoch seconds."""
    return float(calendar.timegm(time.strptime(rt_time, "%Y-%m-%dT%H:%M:%SZ")))


def _shown_url(url: str) -> str:
    """The URL without any user:password part, for error messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _rt_message(response: httpx.Response) -> str:
    """RT's own words from an error answer (its JSON ``message``), shortened."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
    else:
        text = str(body.get("message", body)) if isinstance(body, dict) else str(body)
    text = " ".join(text.split())
    return text[:300] or response.reason_phrase


class _TextOfHtml(HTMLParser):
    """The text of an HTML body (staff often answer from RT's rich-text editor)."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment: tags dropped, blocks on their own lines."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


class RtClient:
    """REST2 calls as the connector user of ``settings``; close it (or use ``with``)."""

    def __init__(self, settings: RequestTrackerSettings, *, timeout: float | None = None) -> None:
        self.settings = settings
        self.timeout = settings.timeout if timeout is None else timeout
        self.base = settings.url.rstrip("/") + "/REST/2.0"
        self._shown_base = _shown_url(self.base)
        self._zone: ZoneInfo | None = None
        try:
            token = read_secret(settings.token, settings.token_file, "request_tracker.token")
            password = read_secret(settings.password, settings.password_file,
                                   "request_tracker.password")
            verify: Any = True
            if urlsplit(settings.url).scheme == "https":
                verify = tls_context(settings.ca_file, "request_tracker.ca_file")
        except SendError as exc:
            raise RtError(str(exc), permanent=True) from None
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if token is not None:
            headers["Authorization"] = f"token {token}"
        elif password is not None:
            auth = httpx.BasicAuth(settings.user, password)
        self._http = httpx.Client(headers=headers, auth=auth, verify=verify,
                                  timeout=self.timeout, follow_redirects=False)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> RtClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None) -> Any:
        """One REST2 call; its JSON answer, or RtError."""
        url = self.base + path
        shown = f"{method} {self._shown_base}{path}"
        try:
            response = self._http.request(method, url, params=params, json=json)
        except httpx.TimeoutException:
            raise RtError(f"{shown}: no answer from RT within {self.timeout:g} s",
                          permanent=False) from None
        except httpx.TransportError as exc:
            raise RtError(f"{shown}: {type(exc).__name__}: {exc}", permanent=False) from None
        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError:
                raise RtError(f"{shown}: RT answered {status} without JSON: "
                              f"{response.text[:200]!r}", permanent=False, status=status) from None
        if status == 401:
            raise RtError(f"{shown}: RT refused the credentials of user {self.settings.user!r} "
                          "(401; check the token or password)", permanent=False, status=status)
        if status >= 500 or status in (408, 429):
            raise RtError(f"{shown}: RT answered {status}: {_rt_message(response)}",
                          permanent=False, status=status)
        if 300 <= status < 400:
            raise RtError(f"{shown}: RT answered {status}, a redirect to "
                          f"{response.headers.get('location', '?')}: check request_tracker.url",
                          permanent=True, status=status)
        raise RtError(f"{shown}: RT answered {status}: {_rt_message(response)}",
                      permanent=True, status=status)

    def _items(self, method: str, path: str, *, params: dict[str, Any] | None = None,
               json: Any = None) -> Iterator[dict[str, Any]]:
        """The items of a REST2 collection, page after page."""
        page = 1
        while True:
            answer = self._call(method, path, json=json,
                                params={**(params or {}), "page": page, "per_page": PAGE_SIZE})
            items = answer.get("items") or []
            yield from items
            if len(items) < PAGE_SIZE:
                return
            page += 1

    def _search(self, query: str, *, fields: str = "id",
                params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        return self._items("GET", "/tickets", params={
            "query": query, "fields": fields, "orderby": "id", "order": "ASC", **(params or {})})

    # --- tickets --------------------------------------------------------------------

    def find_by_key(self, value: str) -> int | None:
        """The ticket whose key field is exactly ``value`` (the lowest id if several)."""
        query = f"{_custom_field_term(self.settings.key_field)} = {ticket_sql_string(value)}"
        for item in self._search(query, fields="CustomFields"):
            if value in self._field_values(item, self.settings.key_field):
                return int(item["id"])
        return None

    @staticmethod
    def _field_values(ticket: dict[str, Any], name: str) -> list[str]:
        for field in ticket.get("CustomFields") or []:
            if field.get("name") == name:
                return [str(v) for v in field.get("values") or []]
        return []

    def create(self, *, queue: str, subject: str, requestors: list[str], priority: int,
               content: str, key_value: str) -> int:
        """Open a ticket with its key field set in the same call; its id.

        RT drops a custom field it cannot set without saying so: the ticket is read back,
        and a ticket without its key is an error naming the likely cause.
        """
        answer = self._call("POST", "/ticket", json={
            "Queue": queue, "Subject": subject, "Requestor": requestors, "Priority": priority,
            "Content": content, "ContentType": "text/plain",
            "CustomFields": {self.settings.key_field: key_value},
        })
        try:
            rt_id = int(answer["id"])
        except (KeyError, TypeError, ValueError):
            raise RtError(f"RT created a ticket but did not say its id: {answer!r:.200}",
                          permanent=False) from None
        ticket = self._call("GET", f"/ticket/{rt_id}")
        if key_value not in self._field_values(ticket, self.settings.key_field):
            raise KeyFieldMissing(
                f"RT created ticket {rt_id} in queue {queue!r} without its custom field "
                f"{self.settings.key_field!r}: the field must exist, apply to the queue, and "
                f"user {self.settings.user!r} needs SetInitialCustomField and SeeCustomField "
                "on it", rt_id=rt_id)
        return rt_id

    def comment(self, rt_id: int, *, subject: str, content: str) -> None:
        """Add an internal note (staff only)."""
        self._note(rt_id, "comment", subject, content)

    def correspond(self, rt_id: int, *, subject: str, content: str) -> None:
        """Write to the ticket's requestors."""
        self._note(rt_id, "correspond", subject, content)

    def _note(self, rt_id: int, kind: str, subject: str, content: str) -> None:
        # ContentType is required: without it RT 5.0 answers 400.
        self._call("POST", f"/ticket/{rt_id}/{kind}", json={
            "Subject": subject, "Content": content, "ContentType": "text/plain"})

    def update(self, rt_id: int, fields: dict[str, str | int]) -> None:
        """Set ticket fields; a value the ticket already has is no error.

        RT answers 200 even when it refuses a change: a message that is not a change
        made is a permanent RtError naming it.
        """
        unknown = sorted(set(fields) - UPDATABLE_FIELDS)
        if unknown:
            raise RtError(f"ticket {rt_id}: cannot update {', '.join(unknown)} (RT would "
                          f"ignore it; known fields: {', '.join(sorted(UPDATABLE_FIELDS))})",
                          permanent=True)
        if not fields:
            return
        answer = self._call("PUT", f"/ticket/{rt_id}", json=dict(fields))
        messages = [str(m) for m in answer] if isinstance(answer, list) else [str(answer)]
        refused = [m for m in messages if not any(done in m for done in _DONE_MARKERS)]
        if refused:
            raise RtError(f"RT refused to update ticket {rt_id}: {'; '.join(refused)}",
                          permanent=True, status=200)

    # --- history --------------------------------------------------------------------

    def history(self, rt_id: int, *, after: int = 0) -> list[Txn]:
        """The ticket's transactions with an id above ``after``, oldest first.

        Read newest first and only until ``after`` is reached, so a poll of a long
        ticket reads one page. The ticket's own history (not a transaction search) also
        covers tickets merged into it.
        """
        newer: list[Txn] = []
        page = 1
        while True:
            answer = self._call("GET", f"/ticket/{rt_id}/history", params={
                "fields": "Type,Creator,Created,Data,Field,OldValue,NewValue",
                "orderby": "id", "order": "DESC", "page": page, "per_page": PAGE_SIZE})
            items = answer.get("items") or []
            for item in items:
                txn = self._txn(item)
                if txn.id <= after:
                    return sorted(newer, key=lambda t: t.id)
                newer.append(txn)
            if len(items) < PAGE_SIZE:
                return sorted(newer, key=lambda t: t.id)
            page += 1

    @staticmethod
    def _txn(item: dict[str, Any]) -> Txn:
        creator = item.get("Creator")
        return Txn(
            id=int(item["id"]),
            type=str(item.get("Type") or ""),
            creator=str(creator.get("id") if isinstance(creator, dict) else creator or ""),
            created=_epoch(str(item["Created"])),
            subject=str(item.get("Data") or "").rstrip("\n"),
            field=item.get("Field") or None,
            old=item.get("OldValue") or None,
            new=item.get("NewValue") or None,
        )

    def has_note(self, rt_id: int, marker: str) -> bool:
        """Whether a comment or reply whose subject contains ``marker`` is on the ticket."""
        return any(txn.type in _NOTE_TYPES and marker in txn.subject
                   for txn in self.history(rt_id))

    def content(self, txn_id: int) -> str:
        """The text of a comment or reply: its text/plain part, else its HTML as text."""
        # Only the text parts: a transaction's attachment list would carry its files too.
        parts = list(self._items(
            "POST", "/attachments",
            params={"fields": "ContentType,Content", "orderby": "id", "order": "ASC"},
            json=[{"field": "TransactionId", "value": txn_id},
                  {"field": "ContentType", "operator": "LIKE", "value": "text/"}]))
        for wanted in ("text/plain", "text/html"):
            for part in parts:
                body = part.get("Content")
                if str(part.get("ContentType", "")).lower() == wanted and body:
                    text = str(body)
                    return html_to_text(text) if wanted == "text/html" else text
        return ""

    def changed_since(self, since: float) -> list[int]:
        """Tickets with a key that changed at or after ``since`` (epoch), by id."""
        moment = time.strftime("%Y-%m-%d %H:%M:%S", self._user_time(math.floor(since)))
        query = (f"{_custom_field_term(self.settings.key_field)} IS NOT NULL "
                 f"AND LastUpdated >= '{moment}'")
        return [int(item["id"]) for item in self._search(query)]

    def _user_time(self, epoch: int) -> time.struct_time:
        """``epoch`` in the connector user's time zone (RT's TicketSQL reads dates in it)."""
        if self._zone is None:
            user = self._call("GET", f"/user/{quote(self.settings.user, safe='')}")
            try:
                self._zone = ZoneInfo(str(user.get("Timezone") or "UTC"))
            except (ZoneInfoNotFoundError, ValueError):
                self._zone = ZoneInfo("UTC")
        return datetime.fromtimestamp(epoch, self._zone).timetuple()

    # --- check ----------------------------------------------------------------------

    def check(self, queue: str) -> list[tuple[str, bool, str]]:
        """What a ``rt check`` command shows: (what, ok, detail) for each step in order.

        A step that fails stops the ones that depend on it.
        """
        lines: list[tuple[str, bool, str]] = []
        try:
            version = self._call("GET", "/rt").get("Version", "?")
            lines.append(("reachable", True, f"{self._shown_base}, RT {version}"))
        except RtError as exc:
            if exc.status is None or exc.status >= 500:
                return [("reachable", False, str(exc))]
            # Any answer from RT's REST2 means it is reachable; 401 is judged next.
            lines.append(("reachable", True, f"{self._shown_base} (answered {exc.status})"))
        user = self.settings.user
        try:
            record = self._call("GET", f"/user/{quote(user, safe='')}")
        except RtError as exc:
            lines.append(("authenticated", False, str(exc)))
            return lines
        privileged = bool(int(record.get("Privileged") or 0))
        lines.append(("authenticated", privileged,
                      f"as {user} (id {record.get('id')})" if privileged
                      else f"{user} is not a privileged RT user: staff rights do not apply"))
        zone = record.get("Timezone") or ""
        lines.append(("time zone", bool(zone), f"{user}: {zone}" if zone else
                      f"{user} has no time zone: RT reads search dates in its own default; "
                      "set the user's time zone (UTC)"))
        try:
            found = self._call("GET", f"/queue/{quote(queue, safe='')}")
        except RtError as exc:
            lines.append(("queue", False, f"queue {queue!r} not found or not visible to "
                          f"{user} (SeeQueue): {exc}"))
            return lines
        disabled = str(found.get("Disabled", "0")) not in ("0", "")
        lines.append(("queue", not disabled, f"{queue} (id {found.get('id')})"
                      + (" is disabled" if disabled else "")))
        key = self.settings.key_field
        applied = [f for f in found.get("TicketCustomFields") or [] if f.get("name") == key]
        if len(applied) == 1:
            lines.append(("key field", True, f"{key!r} (id {applied[0].get('id')}) applies "
                          f"to {queue}"))
        elif applied:
            ids = ", ".join(str(f.get("id")) for f in applied)
            lines.append(("key field", False, f"{len(applied)} custom fields named {key!r} "
                          f"(ids {ids}) apply to {queue}: disable all but one"))
        else:
            lines.append(("key field", False, f"custom field {key!r} does not apply to "
                          f"queue {queue}, or {user} lacks SeeCustomField on it"))
        try:
            query = (f"Queue = {ticket_sql_string(queue)} AND "
                     f"{_custom_field_term(key)} = {ticket_sql_string(_CHECK_KEY)}")
            self._call("GET", "/tickets", params={"query": query, "per_page": 1})
            lines.append(("search", True, f"TicketSQL on {key!r} works"))
        except RtError as exc:
            lines.append(("search", False, str(exc)))
        return lines
