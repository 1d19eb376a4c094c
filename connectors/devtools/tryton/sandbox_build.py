"""Build one Tryton template database for the invsync sandbox (run by the Tryton venv's Python).

This file is executed by the interpreter of the dedicated Tryton virtualenv, never imported by
invsync's Django code (invsync's venv has no trytond). ``sandbox.py`` hashes this file and the
sample invoices (``sample_invoices.py`` and ``.json``) to decide whether the cached templates are
still valid, so any change there triggers a rebuild.

    python sandbox_build.py --config trytond.conf --database DB --role accounting|invoicing \\
        --manifest OUT.json [--today YYYY-MM-DD]

The database must already hold the activated modules (``trytond-admin ... --all``). Both roles
create the same French company (EUR, SIREN and FR VAT identifiers), the account_fr chart
(receivable 4111, payable 4011), fiscal years from two years ago to next year with monthly
periods, strict move and invoice sequences, and payment terms.

- ``accounting`` adds the parties a firm's books typically already hold (see ``EXISTING``), so
  partner matching by SIREN / VAT can be exercised, and describes accounts, taxes and journals.
- ``invoicing`` adds customers and suppliers with valid identifiers and the invoices of
  ``sample_invoices.json`` (read by ``sample_invoices.py``; 37 today), created and posted through
  proteus, checks Tryton's figures against the file's and describes each in the manifest.

Everything is deterministic for a given ``--today``: identifiers come from fixed seeds,
invoice dates are offsets from today.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from decimal import Decimal

from proteus import Model, Wizard
from proteus import config as proteus_config

# A sibling module (this script's directory is first on sys.path): the sample invoices' file.
from sample_invoices import TAXES, invoice_specs
from stdnum import luhn
from stdnum.be import vat as be_vat
from stdnum.de import vat as de_vat
from stdnum.fr import siren as fr_siren
from stdnum.fr import siret as fr_siret

MANIFEST_VERSION = 1
_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


CENT = Decimal("0.01")

COMPANY_NAME = "Atelier Démo SAS"
# 1 EUR = 1.0800 USD (Tryton rates are relative to a common base, the company currency has 1).
USD_RATE = Decimal("1.0800")

# Account codes of account_fr worth naming in the manifests (all open, with a type).
# 709/609 (discounts) have no account type in account_fr and refuse lines: their children
# 7091/7097 and 6091/6097 do not. 411, 607, 512 are closed (use 4111, 6071, 5121).
NAMED_ACCOUNTS = [
    "401",
    "4011",
    "411",
    "4111",
    "44566",
    "44571",
    "512",
    "5121",
    "6061",
    "6063",
    "6064",
    "607",
    "6071",
    "609",
    "6091",
    "6097",
    "6226",
    "6241",
    "6256",
    "658",
    "706",
    "707",
    "7071",
    "709",
    "7091",
    "7097",
    "758",
]


# ---------------------------------------------------------------- identifiers (valid, stable)


def make_siren(seed: int) -> str:
    """A valid SIREN (Luhn) built from an 8-digit seed."""
    body = f"{seed:08d}"[-8:]
    return body + luhn.calc_check_digit(body)


def make_siret(siren: str, establishment: int) -> str:
    """A valid SIRET: the SIREN, a 4-digit establishment number and a Luhn check digit."""
    body = siren + f"{establishment:04d}"
    number = body + luhn.calc_check_digit(body)
    assert fr_siret.is_valid(number), number
    return number


def make_fr_vat(siren: str) -> str:
    # stdnum returns the 11 digits; an EU VAT number carries its country prefix.
    return "FR" + fr_siren.to_tva(siren)


def make_de_vat(seed: int) -> str:
    for last in range(10):
        number = f"DE{seed:08d}{last}"
        if de_vat.is_valid(number):
            return number
    raise AssertionError(seed)


def make_be_vat(seed: int) -> str:
    body = f"0{seed:07d}"
    number = f"BE{body}{97 - int(body) % 97:02d}"
    assert be_vat.is_valid(number), number
    return number


def plain(number) -> str:
    """A number without exponent or trailing zeros: "10", "5.5", "0"."""
    text = f"{Decimal(str(number)):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def percent(rate) -> str | None:
    """Tryton stores rates as fractions (0.055); the manifest says "5.5", "20", "0"."""
    return None if rate is None else plain(Decimal(rate) * 100)


# ---------------------------------------------------------------- parties

COMPANY_SIREN = make_siren(81234567)

# key, name, country, roles, identifiers description (built below), email
CUSTOMER_SPECS = [
    # French customers: SIREN on the party, SIRET on the address, FR VAT number.
    (
        "boulangerie_martin",
        "Boulangerie Martin SARL",
        "FR",
        {"siren": 42345678, "vat": True, "siret": 12},
    ),
    (
        "cabinet_durand",
        "Cabinet Durand & Associés",
        "FR",
        {"siren": 53456789, "vat": True, "siret": 25},
    ),
    ("librairie_lefevre", "Librairie Lefèvre", "FR", {"siren": 64567890, "siret": 17}),
    ("restaurant_gourmet", "Restaurant Le Gourmet", "FR", {"siren": 75678901, "vat": True}),
    # A private person: no identifier at all.
    ("jean_dupuis", "Jean Dupuis", "FR", {}),
    # EU customers: only their EU VAT number.
    ("mueller_gmbh", "Müller Maschinenbau GmbH", "DE", {"de_vat": 13579246}),
    ("van_den_berg", "Brasserie Van den Berg BV", "BE", {"be_vat": 4567891}),
    # Outside the EU: invoiced in USD, export exempt of VAT.
    ("acme_us", "Acme Trading Inc.", "US", {}),
]
SUPPLIER_SPECS = [
    (
        "elec_fournier",
        "Électricité Générale Fournier SAS",
        "FR",
        {"siren": 31234568, "vat": True, "siret": 31},
    ),
    ("papeterie_moreau", "Papeterie Moreau", "FR", {"siren": 39876543, "vat": True, "siret": 14}),
    ("transports_roux", "Transports Roux SA", "FR", {"siren": 44455566, "vat": True}),
    ("imprimerie_girard", "Imprimerie Girard", "FR", {"siren": 57788990}),
    ("bureau_vallee_be", "Bureautique Liège SRL", "BE", {"be_vat": 8765432}),
]

# Parties already present in the ACCOUNTING database (a firm's books are rarely empty).
# Each matches one invoicing party by an identifier only, under a different spelling of the name.
EXISTING = [
    ("boulangerie_martin", "BOULANGERIE MARTIN", "FR", {"siren": 42345678}),
    ("cabinet_durand", "Durand et associés (cabinet)", "FR", {"siren": 53456789, "vat": True}),
    ("elec_fournier", "Fournier Électricité", "FR", {"siren": 31234568, "vat": True}),
]

ADDRESSES = {
    "FR": ("12 rue de la République", "69002", "Lyon"),
    "DE": ("Industriestraße 5", "70173", "Stuttgart"),
    "BE": ("Rue de la Station 8", "4000", "Liège"),
    "US": ("500 Market Street", "94105", "San Francisco"),
}
COUNTRIES = {"FR": "France", "DE": "Germany", "BE": "Belgium", "US": "United States"}


def identifiers_for(spec: dict) -> dict:
    """Identifier codes (compact) for a party spec: fr_siren, fr_siret, eu_vat."""
    out = {}
    if "siren" in spec:
        siren = make_siren(spec["siren"])
        out["fr_siren"] = siren
        if spec.get("vat"):
            out["eu_vat"] = make_fr_vat(siren)
        if "siret" in spec:
            out["fr_siret"] = make_siret(siren, spec["siret"])
    if "de_vat" in spec:
        out["eu_vat"] = make_de_vat(spec["de_vat"])
    if "be_vat" in spec:
        out["eu_vat"] = make_be_vat(spec["be_vat"])
    return out


# ---------------------------------------------------------------- setup common to both roles


def setup_company(today: dt.date, *, allow_cancel_out: bool):
    Country = Model.get("country.country")
    Currency = Model.get("currency.currency")
    CurrencyRate = Model.get("currency.currency.rate")
    Party = Model.get("party.party")
    User = Model.get("res.user")
    config = proteus_config.get_config()

    countries = {}
    for code, name in COUNTRIES.items():
        found = Country.find([("code", "=", code)])
        countries[code] = found[0] if found else Country(name=name, code=code)
        countries[code].save()

    currencies = {}
    for code, name, symbol, rate in [
        ("EUR", "Euro", "€", Decimal(1)),
        ("USD", "U.S. Dollar", "$", USD_RATE),
    ]:
        currency = Currency(name=name, code=code, symbol=symbol, rounding=CENT, digits=2)
        currency.save()
        CurrencyRate(date=dt.date(2000, 1, 1), rate=rate, currency=currency).save()
        currencies[code] = currency

    party = Party(name=COMPANY_NAME)
    street, postal_code, city = "3 place Bellecour", "69002", "Lyon"
    (address,) = party.addresses
    address.street, address.postal_code, address.city = street, postal_code, city
    address.country = countries["FR"]
    party.identifiers.new(type="fr_siren", code=COMPANY_SIREN)
    party.identifiers.new(type="eu_vat", code=make_fr_vat(COMPANY_SIREN))
    party.save()

    company_config = Wizard("company.company.config")
    company_config.execute("company")
    company_form = company_config.form
    company_form.party = party
    company_form.currency = currencies["EUR"]
    company_form.timezone = "Europe/Paris"
    company_config.execute("add")
    config._context = User.get_preferences(True, {})

    Company = Model.get("company.company")
    (company,) = Company.find()
    if allow_cancel_out:
        company.cancel_invoice_out = True
        company.save()

    log("company created")
    create_chart(company)
    log("chart created")
    fiscal_years = create_fiscal_years(company, today)
    payment_terms = create_payment_terms()
    log("fiscal years and payment terms created")
    return {
        "company": company,
        "countries": countries,
        "currencies": currencies,
        "fiscal_years": fiscal_years,
        "payment_terms": payment_terms,
    }


def create_chart(company):
    AccountTemplate = Model.get("account.account.template")
    Account = Model.get("account.account")
    ModelData = Model.get("ir.model.data")
    config = proteus_config.get_config()

    template = AccountTemplate(ModelData.get_id("account_fr", "root", config.context))
    wizard = Wizard("account.create_chart")
    wizard.execute("account")
    wizard.form.account_template = template
    wizard.form.company = company
    wizard.execute("create_account")
    (receivable,) = Account.find([("code", "=", "4111"), ("company", "=", company.id)])
    (payable,) = Account.find([("code", "=", "4011"), ("company", "=", company.id)])
    wizard.form.account_receivable = receivable
    wizard.form.account_payable = payable
    (revenue,) = Account.find([("code", "=", "706"), ("company", "=", company.id)])
    (expense,) = Account.find([("code", "=", "6071"), ("company", "=", company.id)])
    if hasattr(wizard.form, "category_account_revenue"):
        wizard.form.category_account_revenue = revenue
        wizard.form.category_account_expense = expense
    wizard.execute("create_properties")


def create_fiscal_years(company, today: dt.date):
    """Fiscal years from two years ago to next year, monthly periods, strict sequences.

    Invoice numbers: FC<year>-00001 customer invoices, AC customer credit notes, FF supplier
    invoices, AF supplier credit notes; move numbers <year>-000001.
    """
    FiscalYear = Model.get("account.fiscalyear")
    Sequence = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")
    (move_type,) = SequenceType.find([("name", "=", "Account Move")], limit=1)
    (invoice_type,) = SequenceType.find([("name", "=", "Invoice")], limit=1)
    created = []
    for year in range(today.year - 2, today.year + 2):
        move_sequence = Sequence(
            name=f"Écritures {year}",
            sequence_type=move_type,
            company=company,
            prefix=f"{year}-",
            padding=6,
        )
        move_sequence.save()
        fiscal_year = FiscalYear(
            name=str(year),
            start_date=dt.date(year, 1, 1),
            end_date=dt.date(year, 12, 31),
            company=company,
            move_sequence=move_sequence,
        )
        invoice_sequences = {}
        for field, prefix in [
            ("out_invoice_sequence", "FC"),
            ("out_credit_note_sequence", "AC"),
            ("in_invoice_sequence", "FF"),
            ("in_credit_note_sequence", "AF"),
        ]:
            sequence = Sequence(
                name=f"{prefix} {year}",
                sequence_type=invoice_type,
                company=company,
                prefix=f"{prefix}{year}-",
                padding=5,
            )
            sequence.save()
            invoice_sequences[field] = sequence
        (line,) = fiscal_year.invoice_sequences
        for field, sequence in invoice_sequences.items():
            setattr(line, field, sequence)
        fiscal_year.save()
        fiscal_year.click("create_period")
        created.append(
            {
                "name": str(year),
                "start_date": f"{year}-01-01",
                "end_date": f"{year}-12-31",
                "id": fiscal_year.id,
            }
        )
    return created


def create_payment_terms():
    PaymentTerm = Model.get("account.invoice.payment_term")
    direct = PaymentTerm(name="Comptant")
    direct.lines.new(type="remainder")
    direct.save()
    thirty = PaymentTerm(name="30 jours")
    line = thirty.lines.new(type="remainder")
    line.relativedeltas.new(days=30)
    thirty.save()
    return {"direct": direct, "30 jours": thirty}


def create_party(key, name, country_code, spec, countries):
    Party = Model.get("party.party")
    party = Party(name=name)
    street, postal_code, city = ADDRESSES[country_code]
    (address,) = party.addresses
    address.street, address.postal_code, address.city = street, postal_code, city
    address.country = countries[country_code]
    codes = identifiers_for(spec)
    if "fr_siren" in codes:
        party.identifiers.new(type="fr_siren", code=codes["fr_siren"])
    if "eu_vat" in codes:
        party.identifiers.new(type="eu_vat", code=codes["eu_vat"])
    party.save()
    if "fr_siret" in codes:
        # A SIRET identifies an establishment: Tryton requires it to point to an address.
        party.identifiers.new(type="fr_siret", code=codes["fr_siret"], address=party.addresses[0])
        party.save()
    party.contact_mechanisms.new(type="email", value=f"compta@{key.replace('_', '-')}.example")
    party.save()
    return party, codes


def account_map(company):
    Account = Model.get("account.account")
    accounts = {}
    for account in Account.find([("company", "=", company.id), ("code", "in", NAMED_ACCOUNTS)]):
        accounts[account.code] = account
    return accounts


def describe_accounts(accounts):
    return {
        code: {
            "id": a.id,
            "name": a.name,
            "type": a.type.name if a.type else None,
            "closed": bool(a.closed),
        }
        for code, a in sorted(accounts.items())
    }


def tax_map(company):
    """Company taxes usable on invoice lines, by key of ``sample_invoices.TAXES``."""
    Tax = Model.get("account.tax")
    ModelData = Model.get("ir.model.data")
    config = proteus_config.get_config()
    taxes = {}
    for key, (xml_id, _rates) in TAXES.items():
        template_id = ModelData.get_id("account_fr", xml_id, config.context)
        (taxes[key],) = Tax.find([("company", "=", company.id), ("template", "=", template_id)])
    return taxes


def effective_rates(tax, on_date: dt.date) -> list[str]:
    """The rates a tax applies on a date: its own, or its children's valid on that date.

    account_fr's dated rates (20 %, 10 %) are a parent of type "none" with no rate, whose
    children carry start/end dates; invoice lines reference the parent.
    """
    if tax.type == "percentage":
        return [percent(tax.rate)]
    rates = []
    for child in tax.childs:
        if (child.start_date or dt.date.min) <= on_date <= (child.end_date or dt.date.max):
            rates.extend(effective_rates(child, on_date))
    return rates


def template_xml_ids(model: str) -> dict[int, str]:
    """{database id: XML id} of account_fr's records of ``model``.

    ir.model.data's search is not exposed to clients, so this asks trytond directly (the
    build runs in the Tryton venv, on the database proteus is using).
    """
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    database = proteus_config.get_config().database_name
    with Transaction().start(database, 0, readonly=True):
        ModelData = Pool().get("ir.model.data")
        records = ModelData.search([("module", "=", "account_fr"), ("model", "=", model)])
        return {record.db_id: record.fs_id for record in records}


def describe_taxes(company):
    Tax = Model.get("account.tax")
    xml_ids = template_xml_ids("account.tax.template")
    out = []
    for tax in Tax.find([("company", "=", company.id)], order=[("id", "ASC")]):
        out.append(
            {
                "id": tax.id,
                "template": xml_ids.get(tax.template.id) if tax.template else None,
                "name": tax.name,
                "description": tax.description,
                "type": tax.type,
                "rate": percent(tax.rate),
                "parent": tax.parent.id if tax.parent else None,
                "group": tax.group.kind if tax.group else None,
                "start_date": tax.start_date.isoformat() if tax.start_date else None,
                "end_date": tax.end_date.isoformat() if tax.end_date else None,
            }
        )
    return out


def describe_common(ctx):
    Journal = Model.get("account.journal")
    company = ctx["company"]
    return {
        "manifest_version": MANIFEST_VERSION,
        "company": {
            "id": company.id,
            "name": company.party.name,
            "party_id": company.party.id,
            "currency": company.currency.code,
            "fr_siren": COMPANY_SIREN,
            "eu_vat": make_fr_vat(COMPANY_SIREN),
        },
        "currencies": {
            code: {"id": c.id, "rate": str(USD_RATE if code == "USD" else 1)}
            for code, c in ctx["currencies"].items()
        },
        "fiscal_years": ctx["fiscal_years"],
        "journals": {
            j.code: {"id": j.id, "name": j.name, "type": j.type} for j in Journal.find([]) if j.code
        },
        "accounts": describe_accounts(account_map(company)),
        "payment_terms": {name: pt.id for name, pt in ctx["payment_terms"].items()},
        "taxes": describe_taxes(company),
    }


# ---------------------------------------------------------------- invoices (invoicing role)


CANONICAL_TYPES = {
    ("out", False): "customer_invoice",
    ("out", True): "customer_refund",
    ("in", False): "supplier_invoice",
    ("in", True): "supplier_refund",
}
CANONICAL_STATUS = {
    "draft": "draft",
    "validated": "draft",
    "posted": "final",
    "paid": "paid",
    "cancelled": "cancelled",
}


def build_invoices(ctx, today: dt.date, parties: dict):
    Invoice = Model.get("account.invoice")
    Journal = Model.get("account.journal")
    company = ctx["company"]
    accounts = account_map(company)
    taxes = tax_map(company)
    Tax = Model.get("account.tax")

    created = {}
    order = []
    for spec in invoice_specs(today):
        party = parties[spec["party"]]
        invoice_date = spec["date"]
        if spec["credit_of"]:
            # Credit note made by Tryton's credit wizard from an earlier posted invoice.
            origin = created[spec["credit_of"]]
            credit = Wizard("account.invoice.credit", [origin])
            credit.form.with_refund = False
            credit.form.invoice_date = invoice_date
            credit.execute("credit")
            (invoice,) = Invoice.find(
                [
                    ("id", "not in", [i.id for i in created.values()]),
                    ("type", "=", spec["type"]),
                    ("state", "=", "draft"),
                ],
                order=[("id", "DESC")],
                limit=1,
            )
            if spec.get("reference"):
                invoice.reference = spec["reference"]
            invoice.invoice_date = invoice_date
            invoice.save()
        else:
            invoice = Invoice(type=spec["type"])
            invoice.party = party
            invoice.invoice_date = invoice_date
            invoice.currency = ctx["currencies"][spec["currency"]]
            invoice.payment_term = ctx["payment_terms"][spec["term"]]
            if spec.get("reference"):
                invoice.reference = spec["reference"]
            invoice.description = spec["key"].replace("_", " ")
            for description, quantity, unit_price, tax_key, account_code in spec["lines"]:
                line = invoice.lines.new()
                line.description = description
                line.quantity = quantity
                line.account = accounts[account_code]
                line.unit_price = Decimal(unit_price)
                if tax_key is not None:
                    line.taxes.append(Tax(taxes[tax_key].id))
            invoice.save()
        state = spec["state"]
        if state in {"validated", "posted", "paid", "cancelled"}:
            invoice.click("validate_invoice")
        if state in {"posted", "paid", "cancelled"}:
            invoice.click("post")
        if state == "cancelled":
            invoice.click("cancel")
        if state == "paid":
            pay_invoice(invoice, accounts, Journal)
        invoice.reload()
        assert invoice.state == state, (spec["key"], invoice.state, state)
        made = (invoice.untaxed_amount, invoice.tax_amount, invoice.total_amount)
        stated = tuple(Decimal(spec[name]) for name in ("untaxed", "tax", "total"))
        assert made == stated, (spec["key"], "Tryton computed", made, "the file states", stated)
        created[spec["key"]] = invoice
        order.append((spec, invoice))
    return order


def pay_invoice(invoice, accounts, Journal):
    PaymentMethod = Model.get("account.invoice.payment.method")
    methods = PaymentMethod.find([("name", "=", "Banque")])
    if methods:
        method = methods[0]
    else:
        (cash_journal,) = Journal.find([("code", "=", "CASH")])
        method = PaymentMethod(
            name="Banque",
            journal=cash_journal,
            credit_account=accounts["5121"],
            debit_account=accounts["5121"],
        )
        method.save()
    pay = Wizard("account.invoice.pay", [invoice])
    pay.form.payment_method = method
    pay.form.amount = invoice.amount_to_pay
    pay.form.date = invoice.invoice_date
    pay.execute("choice")


def describe_invoice(spec, invoice, party_codes):
    is_credit = invoice.total_amount < 0 or (
        invoice.total_amount == 0 and invoice.untaxed_amount < 0
    )
    lines = []
    for line in invoice.lines:
        lines.append(
            {
                "id": line.id,
                "description": line.description,
                "quantity": plain(line.quantity),
                "unit_price": str(line.unit_price),
                "untaxed_amount": str(line.amount),
                "account": line.account.code,
                "tax_ids": [t.id for t in line.taxes],
                "tax_names": [t.name for t in line.taxes],
                "tax_rates": [
                    rate for t in line.taxes for rate in effective_rates(t, invoice.invoice_date)
                ],
            }
        )
    tax_lines = []
    for tax_line in invoice.taxes:
        tax_lines.append(
            {
                "tax": tax_line.tax.name if tax_line.tax else None,
                "tax_id": tax_line.tax.id if tax_line.tax else None,
                "rate": percent(tax_line.tax.rate) if tax_line.tax else None,
                "base": str(tax_line.base),
                "amount": str(tax_line.amount),
                "account": tax_line.account.code if tax_line.account else None,
            }
        )
    rates = sorted({t["rate"] for t in tax_lines if t["rate"] is not None}, key=Decimal)
    return {
        "key": spec["key"],
        "id": invoice.id,
        "number": invoice.number,
        "reference": invoice.reference,
        "type": invoice.type,
        "canonical_type": CANONICAL_TYPES[(invoice.type, bool(is_credit))],
        "credit_note": bool(is_credit),
        "state": invoice.state,
        "canonical_status": CANONICAL_STATUS[invoice.state],
        "party": spec["party"],
        "party_id": invoice.party.id,
        "party_name": invoice.party.name,
        "party_identifiers": party_codes[spec["party"]],
        "invoice_date": invoice.invoice_date.isoformat() if invoice.invoice_date else None,
        "due_date": (
            invoice.lines_to_pay[0].maturity_date.isoformat()
            if invoice.state in {"posted", "paid"}
            and invoice.lines_to_pay
            and invoice.lines_to_pay[0].maturity_date
            else None
        ),
        "currency": invoice.currency.code,
        "untaxed_amount": str(invoice.untaxed_amount),
        "tax_amount": str(invoice.tax_amount),
        "total": str(invoice.total_amount),
        "tax_rates": rates,
        "move_id": invoice.move.id if invoice.move else None,
        "move_number": invoice.move.number if invoice.move else None,
        # Receivable/payable amount of the move in EUR (differs from "total" for USD).
        "total_company_currency": str(
            sum((line.debit - line.credit for line in invoice.lines_to_pay), Decimal(0))
        )
        if invoice.move
        else None,
        "lines": lines,
        "taxes": tax_lines,
        "expect": spec["expect"],
        "expected_error": spec["expected_error"],
        "reason": spec["reason"],
    }


def counts(invoices):
    by_type, by_state, by_canonical_type, by_type_state, by_expect = {}, {}, {}, {}, {}
    for inv in invoices:
        for bucket, key in [
            (by_type, inv["type"]),
            (by_state, inv["state"]),
            (by_canonical_type, inv["canonical_type"]),
            (by_type_state, f"{inv['type']}/{inv['state']}"),
            (by_expect, inv["expect"]),
        ]:
            bucket[key] = bucket.get(key, 0) + 1
    return {
        "total": len(invoices),
        "by_type": by_type,
        "by_state": by_state,
        "by_canonical_type": by_canonical_type,
        "by_type_state": by_type_state,
        "by_expect": by_expect,
    }


# ---------------------------------------------------------------- roles


def build_accounting(today: dt.date) -> dict:
    ctx = setup_company(today, allow_cancel_out=False)
    manifest = describe_common(ctx)
    existing = []
    for key, name, country, spec in EXISTING:
        party, codes = create_party(key, name, country, spec, ctx["countries"])
        existing.append({"matches": key, "id": party.id, "name": name, "identifiers": codes})
    manifest["role"] = "accounting"
    manifest["existing_parties"] = existing
    return manifest


def build_invoicing(today: dt.date) -> dict:
    ctx = setup_company(today, allow_cancel_out=True)
    manifest = describe_common(ctx)
    parties, party_codes, described = {}, {}, []
    for role, specs in [("customer", CUSTOMER_SPECS), ("supplier", SUPPLIER_SPECS)]:
        for key, name, country, spec in specs:
            party, codes = create_party(key, name, country, spec, ctx["countries"])
            parties[key], party_codes[key] = party, codes
            described.append(
                {
                    "key": key,
                    "id": party.id,
                    "code": party.code,
                    "name": name,
                    "role": role,
                    "country": country,
                    "identifiers": codes,
                    "email": party.contact_mechanisms[0].value,
                    "address": dict(
                        zip(("street", "postal_code", "city"), ADDRESSES[country], strict=True),
                        country=country,
                        id=party.addresses[0].id,
                    ),
                }
            )
    log("parties created")
    built = build_invoices(ctx, today, parties)
    log(f"{len(built)} invoices created")
    invoices = [describe_invoice(spec, invoice, party_codes) for spec, invoice in built]
    log("invoices described")
    manifest["role"] = "invoicing"
    manifest["parties"] = described
    manifest["invoices"] = invoices
    manifest["counts"] = counts(invoices)
    manifest["tax_rounding"] = "document"
    manifest["expectations_assume"] = (
        "a flow mapping the 20, 10, 5.5 and 0 % rates of each direction and not 2.1 %, "
        "the intra-EU acquisition tax to its deductible and collected codes, "
        "with a rounding tolerance of at least 0.01"
    )
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--role", choices=["accounting", "invoicing"], required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    args = parser.parse_args(argv)

    started = time.monotonic()
    config = proteus_config.set_trytond(args.database, config_file=args.config)
    # Posting in the past (or similar invoices) raises UserWarnings meant for a person;
    # a build script acknowledges them all (proteus then runs with _skip_warnings).
    config.skip_warning = True
    builder = build_accounting if args.role == "accounting" else build_invoicing
    manifest = builder(args.today)
    manifest["today"] = args.today.isoformat()
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    with open(args.manifest, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False, sort_keys=False)
        handle.write("\n")
    print(f"built {args.role} database {args.database} in {manifest['build_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
