"""Command line: ``python -m app serve|migrate|check-config``.

    python -m app serve [--host H] [--port P] [--workers N]   (default 127.0.0.1:8000, 1 worker)
    python -m app migrate                                     apply pending migrations
    python -m app check-config                                print what production would refuse
    python -m app audit verify                                check the audit events' hash chain
    python -m app ledger check                                check every balance against its ledger entries
    python -m app worker                                      run the outbox and the periodic jobs
    python -m app account freeze ACCOUNT_ID --kind fraud|judicial --reason T --operator NAME [--held-fen N] [--document REF]
    python -m app account unfreeze ACCOUNT_ID --kind fraud|judicial --reason T --as STAFF [--document REF]   (maker-checker)
    python -m app proposal list [--status S] | approve ID --as STAFF [--note T] | reject ID --as STAFF --note T
    python -m app staff create USERNAME --role ROLE [--operator NAME]   a staff member; prints the password and TOTP secret once
    python -m app staff disable USERNAME | reset-totp USERNAME [--operator NAME]
    python -m app partner create NAME --scopes S[,S] [--callback-url U]   a partner of the open API
    python -m app partner set-callback APP_ID URL | --clear  where its notifications go (or none)
    python -m app partner rotate-secret APP_ID --as STAFF --reason T [--grace-s S]   (maker-checker) a new secret
    python -m app partner set-scopes APP_ID --scopes S[,S] --as STAFF --reason T       (maker-checker)
    python -m app partner disable APP_ID                      refuse the partner's requests from now on
    python -m app pay refund ORDER_ID [--amount-fen N] --reason R --as STAFF   a refund (maker-checker above the threshold)
    python -m app pay reconcile --date YYYY-MM-DD            check a day's WeChat Pay bill; print the mismatches
    python -m app risk rules load FILE --as STAFF --reason T    put a risk rule set (JSON) in force (maker-checker)
    python -m app risk rules schema                            a rule set file's JSON Schema
    python -m app risk rules test FILE --since 24h             replay recent decisions through a candidate rule set
    python -m app risk review list | approve ID --as STAFF --note T | reject ID --as STAFF --note T   held transfers

Sensitive commands (marked maker-checker) act as a named staff member (``--as``) and store a proposal that
a different member approves (``proposal approve ID --as OTHER``); ``--break-glass`` applies one at once,
for an emergency, and is audited loudly (``staff.break_glass``).
    python -m app risk list add|remove LIST VALUE [--action block|allow] [--expires-in-s S]   block and allow lists
    python -m app storage sweep [--older-than-s S] [--dry-run]   delete stored files no row refers to
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from functools import partial

from core.errors import ConfigError
from core.money import yuan


def _settings(host: str | None = None, port: int | None = None):
    from app.config import load_settings

    settings = load_settings()
    if host is not None and port is not None and "SELF_BASE_URL" not in os.environ:
        # what to print for the user to open, not where to bind
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # nosec B104
        settings = settings.replace(self_base_url=f"http://{shown}:{port}")
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args.host, args.port)
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if settings.is_sqlite and args.workers > 1:
        # SQLite has one writer at a time, and a transaction that reads before it writes cannot wait
        # for the lock: with several processes that surfaces as "database is locked" mid-request.
        # The embedded default is for one process; several workers need MySQL.
        print(
            f"error: --workers {args.workers} needs MySQL: the embedded SQLite database serves one worker. "
            "Set DATABASE_URL=mysql://user:password@host:3306/db, or run with --workers 1.",
            file=sys.stderr,
        )
        return 2

    from app.metrics import prepare_multiprocess_dir

    # Before prometheus_client is imported (by the app) and before the workers start: every worker
    # writes its counts under this directory, and /metrics sums them.
    prepare_multiprocess_dir(settings.var_dir)
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.db import close_db, first_start, init_db
    from app.factory import create_app

    async def gate() -> None:
        # Migrate (sandbox) or refuse (production) before any worker starts; the first start's rule set.
        await init_db(settings.database_url, auto_migrate=not settings.is_production)
        try:
            await first_start(settings)
        finally:
            await close_db()

    asyncio.run(gate())
    loader = AppLoader(factory=partial(create_app, settings, name="openbank"))
    app = loader.load()
    app.config.MOTD = False
    base = f"http://{args.host}:{args.port}"
    print(f"Listening on {base}  (mode: {settings.app_env}, database: {settings.database_url.split('://')[0]})")
    print(f"  API docs:  {base}/docs")
    if not settings.is_production:  # production refuses to start without a covering font
        from app.factory import contract_font_warning

        warning = contract_font_warning(settings)
        if warning:
            print(f"  {warning}")
    if settings.sandbox_routes:
        print("  Log in (sandbox): get a code, then exchange it:")
        print(f"    curl -s -X POST {base}/sandbox/control/login-code -H 'content-type: application/json' -d '{{}}'")
        print(f"    curl -s -X POST {base}/api/v1/auth/login -H 'content-type: application/json' -d '{{\"code\": \"<code>\"}}'")
    sys.stdout.flush()
    # TLS here when configured (the staff console needs it in production, or a trusted proxy in front)
    tls = {"cert": settings.tls_cert_path, "key": settings.tls_key_path} if settings.tls_cert_path else None
    if args.workers == 1:
        # One worker: serve in this process, without Sanic's worker manager (whose start-up handshake
        # can miss a SIGTERM that arrives in its first moments).
        app.prepare(host=args.host, port=args.port, single_process=True, motd=False, ssl=tls)
        Sanic.serve_single(primary=app)
    else:
        app.prepare(host=args.host, port=args.port, workers=args.workers, motd=False, ssl=tls)
        Sanic.serve(primary=app, app_loader=loader)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from app.db import migrate

    settings = _settings()
    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from tortoise import Tortoise

    from app.db import tortoise_config
    from services import audit

    settings = _settings()

    async def run():
        await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
        try:
            return await audit.verify()
        finally:
            await Tortoise.close_connections()

    report = asyncio.run(run())
    if report.ok:
        print(f"audit chain OK: {report.events} event(s)")
        return 0
    print(f"audit chain BROKEN after {report.events} good event(s): event id={report.event_id} seq={report.seq}: {report.problem}")
    return 1


def cmd_ledger_check(args: argparse.Namespace) -> int:
    from tortoise import Tortoise

    from app.db import tortoise_config
    from core.pii import mask_card
    from services.accounts import ledger

    settings = _settings()

    async def run():
        await Tortoise.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
        try:
            return await ledger.check()
        finally:
            await Tortoise.close_connections()

    report = asyncio.run(run())
    if report.ok:
        print(f"ledger OK: {report.accounts} account(s), {report.entries} entr(y/ies); every balance is the sum of its entries")
        return 0
    for bad in report.mismatches:
        print(f"account id={bad.account_id} number={mask_card(bad.number)}: balance {bad.balance_fen} fen, entries sum to "
              f"{bad.entries_sum_fen} fen, last entry says {bad.last_balance_after_fen}")
    print(f"ledger BROKEN: {len(report.mismatches)} of {report.accounts} account(s) do not add up")
    return 1


async def _with_services(settings, fn):
    """Run ``fn(ctx)`` with the database and the service context, as a worker process has them."""
    from app.db import close_db, init_db
    from app.providers import build_http, build_services

    await init_db(settings.database_url, auto_migrate=not settings.is_production)
    http = build_http(settings)
    try:
        return await fn(build_services(settings, http))
    finally:
        await http.aclose()
        await close_db()


def cmd_storage_sweep(args: argparse.Namespace) -> int:
    import json

    from services import storage_sweep

    settings = _settings()
    age = args.older_than_s if args.older_than_s is not None else settings.storage_sweep_age_s
    result = asyncio.run(_with_services(settings, lambda ctx: storage_sweep.sweep(ctx, older_than_s=age, dry_run=args.dry_run)))
    print(json.dumps(result))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging.config
    import signal

    from app.logs import logging_config
    from services import jobs, worker

    settings = _settings()
    # as the server logs: JSON lines on stderr, personal data masked, at LOG_LEVEL (a loop's failures and
    # recoveries, each job's result); without it only warnings reached stderr, raw
    logging.config.dictConfig(logging_config(settings.log_level))

    async def work(ctx) -> None:
        from app.db import first_start

        await first_start(settings)  # a worker started alone on a fresh install, or production without rules
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        names = ["outbox"] + [j.name for j in worker.periodic_jobs(ctx, settings)]
        print(f"worker {jobs.holder_id()}: {', '.join(names)}", flush=True)
        await worker.run(ctx, settings, stop, poll_s=args.poll_s)

    asyncio.run(_with_services(settings, work))
    return 0


def cmd_partner(args: argparse.Namespace) -> int:
    """Partners of the open API. Prints JSON; the secret appears once, at creation or rotation."""
    import json

    from core.errors import AppError, ValidationFailed
    from services.partners import registry

    async def run(ctx) -> dict:
        if args.partner_command == "create":
            made = await registry.create(ctx, name=args.name, scopes=[s.strip() for s in args.scopes.split(",")],
                                         callback_url=args.callback_url, card_networks=args.card_networks.split(","))
        elif args.partner_command == "rotate-secret":
            return await _sensitive(ctx, args, "partner.rotate_secret", {"app_id": args.app_id, "grace_s": args.grace_s},
                                    args.reason)
        elif args.partner_command == "set-scopes":
            return await _sensitive(ctx, args, "partner.scopes", {"app_id": args.app_id, "scopes": args.scopes},
                                    args.reason)
        elif args.partner_command == "set-callback":
            partner = await registry.set_callback(ctx, args.app_id, None if args.clear else args.url)
            return {"app_id": partner.app_id, "callback_url": partner.callback_url}
        else:
            partner = await registry.disable(args.app_id)
            return {"app_id": partner.app_id, "status": str(partner.status)}
        p = made.partner
        return {"app_id": p.app_id, "name": p.name, "scopes": p.scopes, "callback_url": p.callback_url,
                "card_networks": p.card_networks or [],
                "status": str(p.status), "secret": made.secret,
                "previous_secret_valid_until": p.previous_valid_until.isoformat() if p.previous_valid_until else None}

    try:
        result = asyncio.run(_with_services(_settings(), run))
    except registry.PartnerNotFound as exc:
        print(f"error: no partner {exc}", file=sys.stderr)
        return 1
    except ValidationFailed as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1 if exc.status in (404, 409) else 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_account(args: argparse.Namespace) -> int:
    """The bank's freezes of an account (fraud; judicial, of the whole account or of an amount), set and
    lifted by a named operator with a reason, each an audit event. Prints JSON."""
    from services.accounts import restrictions

    async def run(ctx) -> dict:
        if args.account_command == "freeze":
            changed = await restrictions.freeze(args.account_id, kind=args.kind, reason=args.reason,
                                                operator_name=args.operator, held_fen=args.held_fen,
                                                document_ref=args.document)
        else:
            return await _sensitive(ctx, args, "account.unfreeze",
                                    {"account_id": args.account_id, "kind": args.kind, "document": args.document},
                                    args.reason)
        r = changed.restriction
        return {"account_id": changed.account.id, "status": str(changed.account.status), "restriction_id": r.id,
                "code": str(r.code), "held_fen": r.held_fen, "document": r.document_ref, "set_by": r.set_by,
                "since": r.created_at.isoformat(), "lifted_at": r.lifted_at.isoformat() if r.lifted_at else None,
                "changed": changed.changed}

    return _print_json(run)



def _cli_client():
    import getpass
    import socket

    from services.staff.sessions import Client

    return Client(ip="cli", user_agent=f"python -m app; {getpass.getuser()}@{socket.gethostname()}"[:256])


async def _as_staff(username: str):
    """The staff member a command acts as, with the command line as their client (for the audit)."""
    from services.staff import directory
    from services.staff.sessions import Current

    return Current(None, await directory.acting(username)), _cli_client()


def proposal_json(row) -> dict:
    return {"proposal_id": row.id, "action": row.action, "status": str(row.status), "summary": row.summary,
            "reason": row.reason, "params": row.params, "proposed_by": f"staff:{row.proposed_by_id}",
            "expires_at": row.expires_at.isoformat(), "decided_by": f"staff:{row.decided_by_id}" if row.decided_by_id else None,
            "result": row.result}


async def _sensitive(ctx, args, action: str, params: dict, reason: str) -> dict:
    """A maker-checker action from the command line: proposed as ``--as`` (or applied at once when the
    action needs no second person for these parameters), or ``--break-glass``: applied now, audited loudly."""
    from services.staff import proposals
    from services.staff.actions import Applied

    me, client = await _as_staff(args.as_staff)
    if args.break_glass:
        applied = await proposals.break_glass(ctx, me, client, action, params, reason)
        return {"break_glass": True, **applied.result, **(applied.shown_once or {})}
    done = await proposals.act(ctx, me, client, action, params, reason)
    if isinstance(done, Applied):
        return {**done.result, **(done.shown_once or {})}
    return {**proposal_json(done), "next": f"a different staff member: python -m app proposal approve {done.id} --as USERNAME"}


def cmd_proposal(args: argparse.Namespace) -> int:
    """Maker-checker proposals: list them, approve or reject one as a named staff member. Prints JSON."""
    from models.enums import ProposalStatus
    from services.staff import proposals

    async def run(ctx) -> dict | list:
        if args.proposal_command == "list":
            rows = await proposals.listing(status=ProposalStatus(args.status) if args.status != "all" else None)
            return [proposal_json(r) for r in rows]
        me, client = await _as_staff(args.as_staff)
        if args.proposal_command == "reject":
            return proposal_json(await proposals.reject(ctx, me, client, args.proposal_id, args.note))
        outcome = await proposals.approve(ctx, me, client, args.proposal_id, args.note)
        answer = proposal_json(outcome.proposal)
        if outcome.applied is not None and outcome.applied.shown_once:
            answer.update(outcome.applied.shown_once)  # shown here, once; never stored
        return answer

    return _print_json(run)


def _sensitive_args(parser: argparse.ArgumentParser, *, reason: bool = True) -> None:
    parser.add_argument("--as", dest="as_staff", required=True, metavar="STAFF",
                        help="the staff member acting (their username; audited)")
    if reason:
        parser.add_argument("--reason", required=True, help="why (4 to 200 characters; audited)")
    parser.add_argument("--break-glass", action="store_true",
                        help="apply now without a second person (an emergency; audited as staff.break_glass)")


def _print_json(run) -> int:
    """Run ``run(ctx)`` with the services and print its answer as JSON; a refusal goes to stderr as
    ``error: CODE: message``, exit 1 (not found, conflict) or 2 (anything else refused)."""
    import json

    from core.errors import AppError

    try:
        result = asyncio.run(_with_services(_settings(), run))
    except AppError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1 if exc.status in (404, 409) else 2
    print(json.dumps(result, ensure_ascii=False))
    return 0

def cmd_staff(args: argparse.Namespace) -> int:
    """The bank's staff (console logins). ``create`` and ``reset-totp`` print the secrets once, as JSON;
    each command is an audit event naming the operator (``--operator``, default the system user)."""
    import getpass

    from services.staff import directory

    operator = f"operator:{args.operator or getpass.getuser()}"

    async def run(ctx) -> dict:
        if args.staff_command == "create":
            made = await directory.create(ctx, args.username, args.role, operator=operator)
            return {"username": made.staff.username, "role": str(made.staff.role), "password": made.password,
                    "totp_secret": made.totp_secret}
        if args.staff_command == "reset-totp":
            made = await directory.reset_totp(ctx, args.username, operator=operator)
            return {"username": made.staff.username, "totp_secret": made.totp_secret}
        staff = await directory.disable(args.username, operator=operator)
        return {"username": staff.username, "disabled": staff.disabled}

    return _print_json(run)


def cmd_pay_refund(args: argparse.Namespace) -> int:
    """A staff member's refund of a paid device fee (the same rules as the user's): applied at once at or
    below ``ADMIN_FOUR_EYES_ABOVE_FEN``, a proposal above it. Prints JSON."""

    async def run(ctx) -> dict:
        return await _sensitive(ctx, args, "payment.refund", {"order_id": args.order_id, "amount_fen": args.amount_fen},
                                args.reason)

    return _print_json(run)


def cmd_pay_reconcile(args: argparse.Namespace) -> int:
    """Check a day's WeChat Pay trade bill against our orders and refunds, record and print every
    mismatch. Exit 0: the day agrees; 1: mismatches (printed); 2: no bill could be had or read."""
    from datetime import date

    from integrations.wechatpay import WeChatPayError, WeChatPayUnavailable
    from services.payments import bills

    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date must be YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_with_services(_settings(), lambda ctx: bills.reconcile_day(ctx, day)))
    except (WeChatPayUnavailable, WeChatPayError, bills.BillMalformed) as exc:
        print(f"error: the bill of {day} could not be checked: {exc}", file=sys.stderr)
        return 2

    def amount(fen: int | None) -> str:
        return "-" if fen is None else f"{fen} fen"

    for m in result.mismatches:
        refund = f" refund={m.out_refund_no}" if m.out_refund_no else ""
        done = f" [{m.resolution}]" if m.resolution else ""
        print(f"{m.kind}: order={m.out_trade_no}{refund} ours={amount(m.ours_fen)} bill={amount(m.bill_fen)}"
              f" - {bills.KINDS[m.kind]}{done}")
    source = "WeChat Pay's bill" if result.had_bill else "no bill from WeChat Pay"
    verdict = "agrees with our books" if not result.mismatches else f"{len(result.mismatches)} mismatch(es)"
    print(f"{day}: {source}, {result.payments} payment(s), {result.refunds} refund(s): {verdict}")
    return 1 if result.mismatches else 0


def cmd_risk(args: argparse.Namespace) -> int:
    """Risk control: rule sets (load, schema) and the block and allow lists."""
    import json
    from pathlib import Path

    from core.errors import AppError
    from services.risk import lists, rules

    if args.risk_command == "rules" and args.rules_command == "schema":
        print(json.dumps(rules.schema(), ensure_ascii=False, indent=2))
        return 0

    async def run(ctx) -> str:
        if args.risk_command == "review":
            return await _risk_review(ctx, args)
        if args.risk_command == "rules" and args.rules_command == "test":
            rule_set = rules.parse(await asyncio.to_thread(Path(args.file).read_bytes))
            return await _risk_rules_test(rule_set, args.since)
        if args.risk_command == "rules":
            source = await asyncio.to_thread(Path(args.file).read_text, encoding="utf-8")
            done = await _sensitive(ctx, args, "risk.rules", {"rule_set": source}, args.reason)
            if "proposal_id" in done:
                return (f"proposal #{done['proposal_id']}: {done['summary']}; pending until a different staff "
                        f"member approves it: python -m app proposal approve {done['proposal_id']} --as USERNAME")
            return f"rule set version {done['version']} in force; sha256 {done['digest']}"
        if args.list_command == "add":
            entry = await lists.put(ctx, args.list, args.value, action=args.action, note=args.note,
                                    expires_in_s=args.expires_in_s, plate_color=args.plate_color)
            until = entry.expires_at.isoformat() if entry.expires_at else "until removed"
            return f"{args.list} {lists.shown(args.list, entry.value)} on the {entry.action} list, {until}"
        removed = await lists.remove(ctx, args.list, args.value, plate_color=args.plate_color)
        return f"{args.list} removed from its list" if removed else f"{args.list}: not on a list"

    try:
        print(asyncio.run(_with_services(_settings(), run)))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _since(text: str):
    """``--since``: an ISO date-time (China time when it has no offset) or a duration back from now
    (``90m``, ``24h``, ``7d``)."""
    import re
    from datetime import datetime, timedelta

    from core.clock import CHINA_TZ, utcnow

    found = re.fullmatch(r"([0-9]{1,5})([mhd])", text)
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[found[2]]
        return utcnow() - timedelta(**{unit: int(found[1])})
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=CHINA_TZ)


async def _risk_rules_test(rule_set, since_text: str) -> str:
    from services.risk import replay

    report = await replay.replay(rule_set, since=_since(since_text))
    lines = [f"replayed {report.replayed} decision(s) since {report.since.isoformat()} through version "
             f"{rule_set.version}: " + ", ".join(f"{k} {v}" for k, v in sorted(report.by_subject.items()))]
    for name in ("allow", "review", "block"):
        lines.append(f"  {name:<6} recorded {report.recorded[name]:>7}   candidate {report.candidate[name]:>7}")
    for rule, n in sorted(report.shadow_fired.items()):
        lines.append(f"  shadow {rule}: would have acted on {n}")
    lines.append(f"{len(report.differences)} decided differently")
    for d in report.differences[:200]:
        lines.append(f"  #{d.event_id} {d.at.isoformat()} {d.subject} {d.reference}: {d.recorded} -> {d.candidate}"
                     f" ({', '.join(d.rules) or 'no rule'})")
    if len(report.differences) > 200:
        lines.append(f"  … and {len(report.differences) - 200} more")
    return "\n".join(lines)


async def _risk_review(ctx, args) -> str:
    from services.accounts import funding

    if args.review_command == "list":
        from models.risk import RiskEvent

        held = await funding.held()
        if not held:
            return "nothing held"
        lines = []
        for t in held:
            event = await RiskEvent.filter(reference=t.request_id).order_by("-id").first()
            rules_fired = ", ".join(f"{r['rule']} ({r['type']})" for r in (event.reasons or []) if not r["shadow"]) \
                if event else "?"
            lines.append(f"#{t.id} {t.created_at.isoformat()} account {t.account_id} {t.direction} "
                         f"{yuan(t.amount_fen, grouped=False)} yuan: {rules_fired}")
        return "\n".join(lines)
    if args.review_command == "approve":
        done = await _sensitive(ctx, args, "transfer.approve", {"transfer_id": args.transfer_id}, args.note)
        if "proposal_id" in done:
            return (f"#{args.transfer_id}: above the four-eyes threshold, proposal #{done['proposal_id']} waits for a "
                    f"different staff member: python -m app proposal approve {done['proposal_id']} --as USERNAME")
        return f"#{done['transfer_id']}: {done['status']}"
    from services.staff import queues

    me, client = await _as_staff(args.as_staff)
    transfer = await queues.reject_held(ctx, me, client, args.transfer_id, args.note)
    return f"#{transfer.id}: {transfer.status}" + (f" ({transfer.decline_reason})" if transfer.decline_reason else "")


def cmd_check_config(args: argparse.Namespace) -> int:
    from app.config import production_problems

    settings = _settings()
    problems = production_problems(settings)
    for p in problems:
        print(f"- {p}")
    print("ready for production" if not problems else f"{len(problems)} problem(s) for production")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="check the hash chain of audit events").set_defaults(func=cmd_audit_verify)
    ledger = sub.add_parser("ledger", help="ledger tools").add_subparsers(dest="ledger_command", required=True)
    ledger.add_parser("check", help="check that every balance equals the sum of its entries").set_defaults(
        func=cmd_ledger_check)
    sub.add_parser("check-config", help="list what production mode would refuse").set_defaults(func=cmd_check_config)
    worker = sub.add_parser("worker", help="run the outbox and the periodic background jobs")
    worker.add_argument("--poll-s", type=float, default=30.0, help="how often to look for due jobs")
    worker.set_defaults(func=cmd_worker)
    partner = sub.add_parser("partner", help="partners of the open API").add_subparsers(dest="partner_command",
                                                                                         required=True)
    create = partner.add_parser("create", help="a new partner; prints its app id and secret (shown once)")
    create.add_argument("name", nargs="?", help="the partner's name (at most 64 characters)")
    # the first release took the name as --name: still accepted, not shown
    create.add_argument("--name", dest="name_option", default=None, help=argparse.SUPPRESS)
    create.add_argument("--scopes", required=True, help="comma-separated: etc:debit, parking:debit, fuel:debit, "
                        "carwash:debit, etc:read")
    create.add_argument("--callback-url", default=None, help="where notifications go (https in production)")
    create.add_argument("--card-networks", default="", help="comma-separated 4-digit ETC card network numbers "
                        "whose cards this partner issues: it is told of bindings of those cards only")
    create.set_defaults(func=cmd_partner)
    set_callback = partner.add_parser("set-callback", help="set where the partner's notifications go, or --clear it")
    set_callback.add_argument("app_id")
    target = set_callback.add_mutually_exclusive_group(required=True)
    target.add_argument("url", nargs="?", default=None, help="http(s) URL (https in production)")
    target.add_argument("--clear", action="store_true", help="send the partner no notifications")
    set_callback.set_defaults(func=cmd_partner)
    rotate = partner.add_parser("rotate-secret", help="a new secret; the old one stays valid for --grace-s")
    rotate.add_argument("app_id")
    rotate.add_argument("--grace-s", type=int, default=24 * 3600)
    _sensitive_args(rotate)
    rotate.set_defaults(func=cmd_partner)
    scopes = partner.add_parser("set-scopes", help="what the partner may call (maker-checker)")
    scopes.add_argument("app_id")
    scopes.add_argument("--scopes", required=True, help="comma-separated, as for create")
    _sensitive_args(scopes)
    scopes.set_defaults(func=cmd_partner)
    disable = partner.add_parser("disable", help="refuse the partner's requests from now on")
    disable.add_argument("app_id")
    disable.set_defaults(func=cmd_partner)
    account = sub.add_parser("account", help="the bank's freezes of an account").add_subparsers(
        dest="account_command", required=True)
    for name in ("freeze", "unfreeze"):
        one = account.add_parser(name, help="freeze the account (no money out; money still in)" if name == "freeze"
                                 else "lift a freeze (the account is active again when nothing else restricts it)")
        one.add_argument("account_id", type=int)
        one.add_argument("--kind", required=True, choices=["fraud", "judicial"])
        if name == "freeze":
            one.add_argument("--reason", required=True)
            one.add_argument("--operator", required=True, help="the name of the operator acting (audited)")
        else:
            _sensitive_args(one)
        one.add_argument("--document", default=None, help="the court's or authority's document number"
                         + ("" if name == "freeze" else " (which judicial freeze, when there are several)"))
        if name == "freeze":
            one.add_argument("--held-fen", type=int, default=None, help="judicial: hold this amount, not the whole "
                             "account")
        one.set_defaults(func=cmd_account, held_fen=None)
    from models.enums import ProposalStatus, StaffRole

    staff = sub.add_parser("staff", help="the bank's staff (console logins)").add_subparsers(
        dest="staff_command", required=True)
    for name, text in (("create", "a new staff member; prints the password and TOTP secret (shown once)"),
                       ("disable", "no more logins; open sessions end"),
                       ("reset-totp", "a new TOTP secret (shown once); open sessions end")):
        one = staff.add_parser(name, help=text)
        one.add_argument("username")
        if name == "create":
            one.add_argument("--role", required=True, choices=[str(r) for r in StaffRole])
        one.add_argument("--operator", default=None, help="the name of the operator acting (audited; default: "
                         "the system user)")
        one.set_defaults(func=cmd_staff)
    proposal = sub.add_parser("proposal", help="maker-checker: sensitive actions waiting for a second person") \
        .add_subparsers(dest="proposal_command", required=True)
    listed = proposal.add_parser("list", help="proposals, newest first (default: pending)")
    listed.add_argument("--status", default="pending", choices=["all", *[str(s) for s in ProposalStatus]])
    listed.set_defaults(func=cmd_proposal)
    for name in ("approve", "reject"):
        one = proposal.add_parser(name, help="apply it (a different member than the proposer)" if name == "approve"
                                  else "refuse it (or withdraw your own)")
        one.add_argument("proposal_id", type=int)
        one.add_argument("--as", dest="as_staff", required=True, metavar="STAFF", help="the staff member deciding")
        one.add_argument("--note", required=name == "reject", default="", help="why (audited)")
        one.set_defaults(func=cmd_proposal)
    pay = sub.add_parser("pay", help="WeChat Pay").add_subparsers(dest="pay_command", required=True)
    refund = pay.add_parser("refund", help="refund a paid device fee (default: all that is left)")
    refund.add_argument("order_id", type=int)
    refund.add_argument("--amount-fen", type=int, default=None)
    _sensitive_args(refund)
    refund.set_defaults(func=cmd_pay_refund)
    reconcile = pay.add_parser("reconcile", help="check a day's trade bill against our books; print the mismatches")
    reconcile.add_argument("--date", required=True, help="the day, YYYY-MM-DD (China Standard Time)")
    reconcile.set_defaults(func=cmd_pay_reconcile)
    from services.risk.rules import LISTS

    risk = sub.add_parser("risk", help="risk control").add_subparsers(dest="risk_command", required=True)
    risk_rules = risk.add_parser("rules", help="rule sets").add_subparsers(dest="rules_command", required=True)
    load = risk_rules.add_parser("load", help="put a rule set (JSON) in force; its version must be the newest")
    load.add_argument("file")
    _sensitive_args(load)
    load.set_defaults(func=cmd_risk)
    risk_rules.add_parser("schema", help="print the JSON Schema of a rule set file").set_defaults(func=cmd_risk)
    test = risk_rules.add_parser("test", help="replay recent decisions through a candidate rule set; print what "
                                 "it would have decided differently")
    test.add_argument("file")
    test.add_argument("--since", required=True, help="an ISO date-time (China time without an offset), or 90m, 24h, 7d")
    test.set_defaults(func=cmd_risk)
    review = risk.add_parser("review", help="top-ups and withdrawals held by risk control").add_subparsers(
        dest="review_command", required=True)
    review.add_parser("list", help="what is held, oldest first, with the rules that held it").set_defaults(func=cmd_risk)
    for name in ("approve", "reject"):
        verdict = review.add_parser(name, help="send it" if name == "approve" else "release the money, send nothing")
        verdict.add_argument("transfer_id", type=int)
        verdict.add_argument("--note", required=True, help="why (4 to 200 characters; audited)")
        _sensitive_args(verdict, reason=False)
        verdict.set_defaults(func=cmd_risk)
    risk_list = risk.add_parser("list", help="block and allow lists").add_subparsers(dest="list_command",
                                                                                    required=True)
    for name in ("add", "remove"):
        one = risk_list.add_parser(name, help=f"{name} a value ({', '.join(LISTS)})")
        one.add_argument("list", choices=LISTS)
        one.add_argument("value", help="an ID number, a bank or ETC card number, a plate, a device id, an IP, a "
                         "merchant name or a partner app id")
        one.add_argument("--plate-color", default=None, help="for a plate: blue, yellow, gradient_green, ...")
        if name == "add":
            one.add_argument("--action", choices=["block", "allow"], default="block")
            one.add_argument("--note", default="")
            one.add_argument("--expires-in-s", type=int, default=None, help="default: until removed")
        one.set_defaults(func=cmd_risk)
    storage = sub.add_parser("storage", help="stored files").add_subparsers(dest="storage_command", required=True)
    sweep = storage.add_parser("sweep", help="delete stored files no row refers to")
    sweep.add_argument("--older-than-s", type=int, default=None, help="minimum age (default STORAGE_SWEEP_AGE_S)")
    sweep.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    sweep.set_defaults(func=cmd_storage_sweep)
    args = parser.parse_args(argv)
    if getattr(args, "partner_command", None) == "create":
        if (args.name is None) == (args.name_option is None):
            create.error("give the partner's name once: partner create NAME --scopes ...")
        args.name = args.name or args.name_option
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
