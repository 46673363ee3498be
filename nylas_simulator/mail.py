"""Mail data for one grant: folders, messages, threads, drafts, scheduled sends."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .context import GrantContext
from .people import paragraphs, person, subject
from .util import Record, base36_id, epoch, hex_id, ms_id, pick, rng, uuid_like

MAIL_CORE = (epoch(2025, 1, 1), epoch(2027, 1, 1))
MAIL_WIDE = (epoch(2024, 1, 1), epoch(2027, 6, 1))

# (id, name, attributes) of system folders; the ids are the same on every
# grant of the provider, as Gmail labels and IMAP mailbox names are.
_GOOGLE_SYSTEM: tuple[tuple[str, str, list[str]], ...] = (
    ("INBOX", "INBOX", []),
    ("SENT", "SENT", ["\\Sent"]),
    ("DRAFT", "DRAFT", ["\\Drafts"]),
    ("TRASH", "TRASH", ["\\Trash"]),
    ("SPAM", "SPAM", ["\\Junk"]),
    ("STARRED", "STARRED", ["\\Flagged"]),
    ("IMPORTANT", "IMPORTANT", ["\\Important"]),
)
_IMAP_SYSTEM: tuple[tuple[str, str, list[str]], ...] = (
    ("INBOX", "INBOX", []),
    ("SENT", "Sent", ["\\Sent"]),
    ("Drafts", "Drafts", ["\\Drafts"]),
    ("Trash", "Trash", ["\\Trash"]),
    ("Junk", "Junk", ["\\Junk"]),
    ("Archive", "Archive", ["\\Archive"]),
)
_MS_SYSTEM: tuple[tuple[str, list[str]], ...] = (
    ("Inbox", []),
    ("Sent Items", ["\\Sent"]),
    ("Drafts", ["\\Drafts"]),
    ("Deleted Items", ["\\Trash"]),
    ("Junk Email", ["\\Junk"]),
    ("Archive", ["\\Archive"]),
)
_USER_FOLDERS = ("Receipts 🧾", "Travel ✈️", "Clients/Acme", "Newsletters", "Família")
_LABEL_COLORS = (("#16a765", "#ffffff"), ("#fad165", "#000000"), ("#4986e7", "#ffffff"))

_ATTACHMENTS = (
    ("invoice.pdf", "application/pdf"),
    ("photo 📷.jpg", "image/jpeg"),
    ("notes.txt", "text/plain"),
    ("invite.ics", "text/calendar"),
    ("Übersicht.xlsx", ""),  # Google leaves content_type empty for non-ASCII names
)


@dataclass
class MailData:
    """The mail-side records of one grant, in the order the API serves them."""

    folders: list[Record] = field(default_factory=list)
    messages: list[Record] = field(default_factory=list)
    threads: list[Record] = field(default_factory=list)
    drafts: list[Record] = field(default_factory=list)


@dataclass
class _MailFolders:
    inbox: str
    sent: str
    drafts: str
    extra: list[str]


def build_folders(ctx: GrantContext) -> list[Record]:
    """Folders (Gmail labels included); 6-10 per grant."""
    r = rng(ctx.seed, ctx.grant_id, "folders")
    if ctx.provider == "google":
        return _google_folders(ctx, r)
    if ctx.provider in ("microsoft", "ews"):
        return _ms_folders(ctx, r)
    return _imap_folders(ctx, r)


def _folder(ctx: GrantContext, fid: str, name: str, attrs: list[str]) -> Record:
    return {
        "id": fid,
        "grant_id": ctx.grant_id,
        "object": "folder",
        "name": name,
        "attributes": list(attrs),
    }


def _google_folders(ctx: GrantContext, r: random.Random) -> list[Record]:
    out = []
    for fid, name, attrs in _GOOGLE_SYSTEM:
        rec = _folder(ctx, fid, name, attrs)
        rec.update(system_folder=True, total_count=r.randint(0, 5000))
        rec.update(unread_count=r.randint(0, 50), background_color=None, text_color=None)
        out.append(rec)
    for k in range(r.randint(0, 3)):
        bg, fg = pick(r, _LABEL_COLORS)
        rec = _folder(ctx, f"Label_{k + 1}", _USER_FOLDERS[k], [])
        rec.update(system_folder=False, total_count=r.randint(0, 300))
        rec.update(unread_count=r.randint(0, 10), background_color=bg, text_color=fg)
        out.append(rec)
    return out


def _ms_folders(ctx: GrantContext, r: random.Random) -> list[Record]:
    out = []
    n_sub = r.randint(0, 3)
    inbox_id = ms_id(ctx.seed, ctx.grant_id, "folder", 0)
    for k, (name, attrs) in enumerate(_MS_SYSTEM):
        rec = _folder(ctx, ms_id(ctx.seed, ctx.grant_id, "folder", k), name, attrs)
        rec.update(parent_id=None, child_count=n_sub if k == 0 else 0)
        rec.update(total_count=r.randint(0, 5000), unread_count=r.randint(0, 50))
        out.append(rec)
    for k in range(n_sub):
        fid = ms_id(ctx.seed, ctx.grant_id, "subfolder", k)
        rec = _folder(ctx, fid, _USER_FOLDERS[k], [])
        rec.update(parent_id=inbox_id, child_count=0)
        rec.update(total_count=r.randint(0, 300), unread_count=r.randint(0, 10))
        out.append(rec)
    return out


def _imap_folders(ctx: GrantContext, r: random.Random) -> list[Record]:
    out = []
    for fid, name, attrs in _IMAP_SYSTEM:
        rec = _folder(ctx, fid, name, attrs)
        rec.update(total_count=r.randint(0, 5000), unread_count=r.randint(0, 50))
        out.append(rec)
    for k in range(r.randint(0, 3)):
        name = _USER_FOLDERS[k]
        rec = _folder(ctx, name, name, ["\\HasNoChildren"])
        rec.update(total_count=r.randint(0, 300), unread_count=r.randint(0, 10))
        out.append(rec)
    return out


def _mail_folders(folders: list[Record]) -> _MailFolders:
    by_attr = {f["attributes"][0]: f["id"] for f in folders if f["attributes"]}
    # User folders: Gmail labels and Microsoft folders carry no attribute, IMAP ones
    # \HasNoChildren. A message may sit in one of them as well.
    extra = [
        f["id"]
        for f in folders
        if f["attributes"] in ([], ["\\HasNoChildren"]) and f is not folders[0]
    ]
    return _MailFolders(
        inbox=folders[0]["id"],
        sent=by_attr["\\Sent"],
        drafts=by_attr["\\Drafts"],
        extra=extra,
    )


def _object_id(ctx: GrantContext, kind: str, i: int) -> str:
    if ctx.provider == "google":
        return hex_id(ctx.seed, ctx.grant_id, kind, i)
    if ctx.provider in ("microsoft", "ews"):
        return ms_id(ctx.seed, ctx.grant_id, kind, i)
    return base36_id(ctx.seed, ctx.grant_id, kind, i)


def _message_id(ctx: GrantContext, i: int) -> str:
    if ctx.shared_message is not None and i == 0:
        # The same message delivered to two grants keeps one id.
        return base36_id(ctx.seed, "shared-msg", ctx.shared_message)
    return _object_id(ctx, "msg", i)


def _body(r: random.Random, extra: str = "", large: int = 0) -> tuple[str, str]:
    """HTML body and its 100-character plain snippet."""
    paras = paragraphs(r, r.randint(1, 4))
    html = '<div dir="ltr">' + "".join(f"<p>{p}</p>" for p in paras)
    if large:
        chunk = "<p>Attached log excerpt: all systems nominal, no action needed.</p>\n"
        html += chunk * (large // len(chunk) + 1)
    html += extra + "</div>"
    return html, " ".join(paras)[:100]


def _attachments(ctx: GrantContext, r: random.Random, mid: str) -> list[Record]:
    out = []
    for k in range(r.choice((0, 0, 0, 1, 2))):
        filename, ctype = pick(r, _ATTACHMENTS)
        inline = ctype == "image/jpeg" and r.random() < 0.5
        disposition = None
        if ctx.provider not in ("microsoft", "ews"):
            kind = "inline" if inline else "attachment"
            disposition = f'{kind}; filename="{filename}"'
        out.append(
            {
                "id": base36_id(ctx.seed, mid, "att", k),
                "grant_id": ctx.grant_id,
                "filename": filename,
                "content_type": ctype,
                "size": r.randint(300, 2_000_000),
                "content_id": f"<{uuid_like(mid, k)}>" if inline else None,
                "content_disposition": disposition,
                "is_inline": inline,
            }
        )
    return out


class PlanView(Protocol):
    """What ``_message`` reads of a plan; the large mailbox serves it from arrays."""

    @property
    def thread(self) -> Sequence[int]:
        """Thread index of each message."""
        ...

    @property
    def position(self) -> Sequence[int]:
        """Position of each message in its thread."""
        ...

    @property
    def dates(self) -> Sequence[int]:
        """Date of each message."""
        ...

    @property
    def sent(self) -> Sequence[int | bool]:
        """Whether each message was sent by the grant's owner."""
        ...


Topic = tuple[str, Record, str]  # (subject, counterpart, thread id)


@dataclass
class _Plan:
    """Per-message thread membership, position and direction."""

    thread: list[int]
    position: list[int]
    dates: list[int]
    sent: list[bool]
    members: list[list[int]]


def _plan(ctx: GrantContext) -> _Plan:
    n = ctx.records
    n_threads = max(1, n // 2) if n else 0
    r = rng(ctx.seed, ctx.grant_id, "mail-plan")
    anchors = []
    for _ in range(n_threads):
        lo, hi = MAIL_CORE if r.random() < 0.85 else MAIL_WIDE
        anchors.append(r.randrange(lo, hi - 30 * 86400))
    plan = _Plan([], [], [], [], [[] for _ in range(n_threads)])
    for i in range(n):
        t, k = i % n_threads, i // n_threads
        plan.thread.append(t)
        plan.position.append(k)
        plan.members[t].append(i)
        plan.dates.append(anchors[t] + k * 3600 * r.randint(1, 72) + r.randrange(3600))
        # Every thread opens with a received message, so its
        # latest_message_received_date is never null.
        plan.sent.append(k > 0 and r.random() < 0.45)
    return plan


def _message(
    ctx: GrantContext,
    i: int,
    plan: PlanView,
    topics: Sequence[Topic],
    folders: _MailFolders,
) -> Record:
    r = rng(ctx.seed, ctx.grant_id, "msg", i)
    t, k = plan.thread[i], plan.position[i]
    base_subject, counterpart, thread_id = topics[t]
    mid = _message_id(ctx, i)
    subj = base_subject if k == 0 else f"Re: {base_subject}"
    if ctx.nul and i == 0:
        subj += " \u0000"
    body, snippet = _body(r, large=ctx.large_body if i == 0 else 0)
    sent = plan.sent[i]
    sender, recipient = (ctx.owner, counterpart) if sent else (counterpart, ctx.owner)
    labels = [folders.sent if sent else folders.inbox]
    if folders.extra and r.random() < 0.2:
        labels.append(pick(r, folders.extra))
    msg: Record = {
        "id": mid,
        "grant_id": ctx.grant_id,
        "object": "message",
        "thread_id": thread_id,
        "subject": subj,
        "snippet": snippet,
        "body": body,
        "from": [dict(sender)],
        "to": [dict(recipient)] + ([person(r)] if r.random() < 0.2 else []),
        "cc": [person(r)] if r.random() < 0.3 else [],
        "bcc": [person(r)] if sent and r.random() < 0.1 else [],
        "date": plan.dates[i],
        "unread": (not sent) and r.random() < 0.3,
        "starred": r.random() < 0.1,
        "folders": labels,
        "attachments": _attachments(ctx, r, mid),
        "metadata": {"key1": f"crm-{r.randint(1, 999)}"} if r.random() < 0.1 else {},
        "created_at": plan.dates[i],
        "schedule_id": None,
        "send_at": None,
    }
    if r.random() < 0.7:  # reply_to is simply absent on many providers' messages
        msg["reply_to"] = [dict(sender)] if r.random() < 0.5 else []
    if ctx.provider == "ews":
        msg["in_reply_to"] = f"<{thread_id}.{k - 1}@mail>" if k else None
    return msg


def _thread(ctx: GrantContext, tid: str, msgs: list[Record], sent: Sequence[int | bool]) -> Record:
    received = [m["date"] for m, s in zip(msgs, sent, strict=True) if not s]
    sent_dates = [m["date"] for m, s in zip(msgs, sent, strict=True) if s]
    participants: dict[str, Record] = {}
    folders: dict[str, None] = {}
    for m in msgs:
        for p in m["from"] + m["to"] + m["cc"]:
            participants.setdefault(p["email"], dict(p))
        folders.update(dict.fromkeys(m["folders"]))
    latest = msgs[-1]
    return {
        "grant_id": ctx.grant_id,
        "id": tid,
        "object": "thread",
        "subject": msgs[0]["subject"],
        "snippet": latest["snippet"],
        "has_attachments": any(m["attachments"] for m in msgs),
        "has_drafts": False,
        "starred": any(m["starred"] for m in msgs),
        "unread": any(m["unread"] for m in msgs),
        "earliest_message_date": msgs[0]["date"],
        "latest_message_received_date": max(received),
        "latest_message_sent_date": max(sent_dates) if sent_dates else None,
        "participants": list(participants.values()),
        "message_ids": [m["id"] for m in msgs],
        "draft_ids": [],
        "folders": list(folders),
        "latest_draft_or_message": latest,
    }


def _draft(ctx: GrantContext, d: int, thread: Record | None, folders: _MailFolders) -> Record:
    r = rng(ctx.seed, ctx.grant_id, "draft", d)
    body, snippet = _body(r)
    if thread is not None:
        subj = f"Re: {thread['subject']}"
        date = thread["latest_draft_or_message"]["date"] + r.randint(600, 86400)
        to = [p for p in thread["participants"] if p["email"] != ctx.owner["email"]][:1]
    else:
        subj = subject(r)
        date = r.randrange(*MAIL_CORE)
        to = [person(r)] if r.random() < 0.8 else []
    did = f"r-{r.randrange(10**17, 10**18)}" if ctx.provider == "google" else None
    return {
        "id": did or _object_id(ctx, "draft", d),
        "grant_id": ctx.grant_id,
        "object": "draft",
        "subject": subj,
        "snippet": snippet,
        "body": body,
        "from": [dict(ctx.owner)],
        "to": to,
        "cc": [],
        "bcc": [],
        "reply_to": [],
        "attachments": _attachments(ctx, r, f"draft-{d}"),
        "folders": [folders.drafts],
        "starred": r.random() < 0.1,
        "unread": False,
        "thread_id": thread["id"] if thread is not None else None,
        "date": date,
        "created_at": date,
        "metadata": {},
    }


def build_mail(ctx: GrantContext) -> MailData:
    """All mail records of one grant, sorted the way the API pages them."""
    folders = build_folders(ctx)
    mf = _mail_folders(folders)
    plan = _plan(ctx)
    r = rng(ctx.seed, ctx.grant_id, "topics")
    topics = [
        (subject(r), person(r), _object_id(ctx, "thread", t)) for t in range(len(plan.members))
    ]
    messages = [_message(ctx, i, plan, topics, mf) for i in range(ctx.records)]
    threads = [
        _thread(
            ctx,
            topics[t][2],
            [messages[i] for i in idxs],
            [plan.sent[i] for i in idxs],
        )
        for t, idxs in enumerate(plan.members)
    ]
    drafts = []
    for d in range(ctx.records // 5):
        thread = threads[d % len(threads)] if threads and d % 2 == 0 else None
        draft = _draft(ctx, d, thread, mf)
        if thread is not None:
            thread["draft_ids"].append(draft["id"])
            thread["has_drafts"] = True
            thread["latest_draft_or_message"] = draft
        drafts.append(draft)
    messages.sort(key=lambda m: (-m["date"], m["id"]))
    threads.sort(key=lambda t: (-t["latest_message_received_date"], t["id"]))
    return MailData(folders=folders, messages=messages, threads=threads, drafts=drafts)


_SCHEDULE_STATES = (
    ("pending", "schedule send awaiting send at time"),
    ("success", "schedule send succeeded"),
    ("failed", "schedule send failed: recipient rejected"),
)


def build_schedules(ctx: GrantContext) -> list[Record]:
    """0-3 scheduled sends; only pending ones lack ``close_time``."""
    r = rng(ctx.seed, ctx.grant_id, "schedules")
    out = []
    for k in range(r.randint(0, 3)):
        code, description = pick(r, _SCHEDULE_STATES)
        rec: Record = {
            "schedule_id": uuid_like(ctx.seed, ctx.grant_id, "schedule", k),
            "status": {"code": code, "description": description},
        }
        if code != "pending":
            rec["close_time"] = r.randrange(*MAIL_CORE)
        out.append(rec)
    return out


def message_headers(msg: Record, basic: bool = False) -> list[Record]:
    """The ``headers`` array for ``fields=include_headers`` (or basic headers)."""
    thread = msg.get("thread_id") or "none"
    mid = f"<{msg['id']}@mail.example>"
    refs = f"<{thread}.0@mail.example>"
    basic_headers = [
        {"name": "Message-ID", "value": mid},
        {"name": "In-Reply-To", "value": refs},
        {"name": "References", "value": refs},
    ]
    if basic:
        return basic_headers
    sender = msg["from"][0] if msg.get("from") else {"name": "", "email": ""}
    # Repeated names and undecoded encoded-words are what the real API returns.
    return [
        {"name": "Received", "value": "from mx1.example.com by mx.example.net"},
        {"name": "Received", "value": "from relay.example.org by mx1.example.com"},
        {"name": "From", "value": f"{sender['name']} <{sender['email']}>"},
        {"name": "Subject", "value": "=?UTF-8?Q?Caf=C3=A9_meetup?="},
        {"name": "Content-Type", "value": 'text/html; charset="UTF-8"'},
        *basic_headers,
    ]


def raw_mime(msg: Record) -> str:
    """A small base64url MIME rendering for ``fields=raw_mime``."""
    sender = msg["from"][0]["email"] if msg.get("from") else ""
    text = (
        f"From: {sender}\r\nSubject: {msg.get('subject', '')}\r\n"
        f"Message-ID: <{msg['id']}@mail.example>\r\n"
        'Content-Type: text/html; charset="UTF-8"\r\n\r\n'
        f"{msg.get('snippet', '')}\r\n"
    )
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def tracking_options(msg: Record) -> Record:
    """``tracking_options`` for ``fields=include_tracking_options``."""
    return {"opens": False, "thread_replies": False, "links": False, "label": None}
