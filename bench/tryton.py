"""``tryton_ratio``: the time to sync N invoices into a live Tryton through invsync, divided by the
time a bare script takes to make the minimal JSON-RPC calls for the same entries.

Both write into their own fresh copy of the accounting template on one trytond, one after the
other, in the same process. The bare script gets the entries precomputed (the engine's postings,
built before its clock starts) and makes only the calls any client must: log in, read the user
context, read account, journal and period ids, create the parties, create the moves in batches,
post them. invsync's figure includes everything a run does: reading the source (generated in
memory), records in its database, partner matching, lookups and the crash-safe push protocol.
"""

from __future__ import annotations

import base64
import time
from decimal import Decimal

import requests

from bench.connectors import GeneratedSource, generated_invoice, registered

BATCH = 50
TRYTON_RATES = (Decimal("20"), Decimal("10"))


class Rpc:
    def __init__(self, url: str, database: str, login: str, password: str) -> None:
        self.endpoint = f"{url}{database}/rpc/"
        self.session = requests.Session()
        self.calls = 0
        uid, token, *_ = self.call("common.db.login", [login, {"password": password}, "en"])
        auth = base64.b64encode(f"{login}:{uid}:{token}".encode()).decode()
        self.session.headers["Authorization"] = f"Session {auth}"
        self.context = self.call("model.res.user.get_preferences", [True, {}])

    def call(self, method: str, params: list):
        self.calls += 1
        reply = self.session.post(
            self.endpoint, json={"id": self.calls, "method": method, "params": params}, timeout=300
        ).json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {str(reply['error'])[:500]}")
        return reply["result"]


def _dec(value: Decimal) -> dict:
    return {"__class__": "Decimal", "decimal": str(value)}


def _date(value) -> dict:
    return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}


def _tryton_setup(entries: int):
    from connectors.devtools.tryton.sandbox import TrytonSandbox

    sandbox = TrytonSandbox()
    sandbox.ensure_installed()
    sandbox.start_postgres()
    sandbox.ensure_templates()
    databases = [sandbox.new_database("accounting") for _ in range(2)]
    url = sandbox.start_server(databases)
    return sandbox, url, databases


def _flow_into_tryton(url: str, database: str, password: str):
    from bench.connectors import make_flow
    from connectors.models import Connection

    flow = make_flow(f"tryton-{database}")
    target = flow.accounting_connection
    Connection.objects.filter(pk=target.pk).update(
        provider="tryton", auth_kind="credentials", settings={"url": url, "database": database}
    )
    target.refresh_from_db()
    target.credentials = {"username": "admin", "password": password}
    target.save()
    return flow


def _map_vat_to_tryton(flow, rpc: Rpc) -> None:
    """Point the flow's 20 % and 10 % mappings at Tryton's services taxes of those rates."""
    taxes = rpc.call(
        "model.account.tax.search_read",
        [[("type", "=", "percentage")], 0, None, None, ["name", "rate", "childs"], rpc.context],
    )
    for mapping in flow.vat_mappings.all():
        word = "Vente de services" if mapping.direction == "sales" else "Achat de services"
        rate = mapping.source_rate / 100
        match = next(
            (t for t in taxes if not t["childs"] and word in t["name"]
             and Decimal(t["rate"]["decimal"]) == rate),
            None,
        )  # fmt: skip
        if match is None:
            mapping.delete()
        else:
            mapping.target_code = str(match["id"])
            mapping.save()


def tryton_ratio(*, entries: int, emit) -> None:
    from mappings.services import flow_config_changed
    from syncs.selectors import flow_engine_config
    from syncs.services import flow_lookups_refresh, flow_sync

    sandbox, url, (db_invsync, db_bare) = _tryton_setup(entries)
    password = sandbox.admin_password
    try:
        with registered():
            # Invoices at 20 % and 10 % only, so both sides need the same few taxes.
            GeneratedSource.configure(count=entries, attachments=False, rates=TRYTON_RATES)
            flow = _flow_into_tryton(url, db_invsync, password)
            rpc = Rpc(url, db_invsync, "admin", password)
            _map_vat_to_tryton(flow, rpc)
            flow_config_changed(flow=flow)
            flow.refresh_from_db()
            # The same postings, precomputed for the bare script.
            config = flow_engine_config(flow, flow_lookups_refresh(flow=flow))
            from syncs.engine import build_posting

            postings = []
            for index in range(entries):
                invoice = generated_invoice(index, rates=TRYTON_RATES)
                result = build_posting(invoice, config, external_id=f"bare:{index}")
                postings.append((invoice, result.posting))

            start = time.perf_counter()
            run = flow_sync(flow=flow, trigger="command")
            invsync_seconds = time.perf_counter() - start
            assert run.synced_count == entries, (run.status, run.error_message, run.counts())

        start = time.perf_counter()
        bare_calls = _bare_write(url, db_bare, password, postings)
        bare_seconds = time.perf_counter() - start
    finally:
        sandbox.stop()
    emit("tryton_entries", entries, "entries")
    emit("tryton_invsync_s", invsync_seconds, "s")
    emit("tryton_bare_s", bare_seconds, "s")
    emit("tryton_bare_calls", bare_calls, "calls")
    emit("tryton_ratio", invsync_seconds / bare_seconds, "x")


def _bare_write(url: str, database: str, password: str, postings) -> int:
    rpc = Rpc(url, database, "admin", password)
    ctx = rpc.context
    accounts = {
        row["code"]: row
        for row in rpc.call(
            "model.account.account.search_read",
            [[("type", "!=", None)], 0, None, None, ["code", "party_required"], ctx],
        )
    }
    journals = {
        row["code"]: row["id"]
        for row in rpc.call("model.account.journal.search_read", [[], 0, None, None, ["code"], ctx])
    }
    periods = rpc.call(
        "model.account.period.search_read",
        [[("type", "=", "standard")], 0, None, None, ["start_date", "end_date"], ctx],
    )

    def period_for(day):
        for period in periods:
            start, end = period["start_date"], period["end_date"]
            if (start["year"], start["month"], start["day"]) <= (day.year, day.month, day.day) <= (
                end["year"], end["month"], end["day"],
            ):  # fmt: skip
                return period["id"]
        raise LookupError(day)

    names = sorted({invoice.partner.name for invoice, _ in postings})
    party_ids = dict(
        zip(
            names,
            rpc.call("model.party.party.create", [[{"name": n} for n in names], ctx]),
            strict=True,
        )
    )
    for start in range(0, len(postings), BATCH):
        moves = []
        for invoice, posting in postings[start : start + BATCH]:
            sales = posting.invoice_type.direction.value == "sales"
            lines = []
            for line in posting.lines:
                account = accounts[line.account]
                values = {
                    "account": account["id"], "debit": _dec(line.debit),
                    "credit": _dec(line.credit), "description": line.label,
                }  # fmt: skip
                if account["party_required"]:
                    values["party"] = party_ids[invoice.partner.name]
                    values["maturity_date"] = _date(posting.due_date or posting.date)
                if line.vat_code and line.tax_role:
                    amount = line.credit - line.debit if sales else line.debit - line.credit
                    tax_line = {
                        "tax": int(line.vat_code),
                        "amount": _dec(amount),
                        "type": line.tax_role.value,
                    }
                    values["tax_lines"] = [["create", [tax_line]]]
                lines.append(values)
            moves.append({
                "journal": journals[posting.journal], "period": period_for(posting.date),
                "date": _date(posting.date), "description": posting.reference,
                "lines": [["create", lines]],
            })  # fmt: skip
        ids = rpc.call("model.account.move.create", [moves, ctx])
        rpc.call("model.account.move.post", [ids, ctx])
    return rpc.calls
