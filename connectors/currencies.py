"""ISO 4217 currency codes: the list a currency code a person types is checked against.

The codes are those of Debian's iso-codes 4.15.0 (``/usr/share/iso-codes/json/iso_4217.json``,
which follows the list published by the ISO 4217 maintenance agency, SIX), plus the two codes the
agency added since: ZWG (Zimbabwe Gold, amendment 177, 2024) and XCG (Caribbean guilder, amendment
176, in use from 2025). Codes the agency has withdrawn recently (HRK, SLL, ZWL...) stay accepted:
a folder's books may still be kept in them. A new code is one line here and a test.
"""

from __future__ import annotations

_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL
"""
ISO_4217_CODES: frozenset[str] = frozenset(_CODES.split())


def is_currency_code(code: str) -> bool:
    """Whether ``code`` is an ISO 4217 alphabetic code, exactly (three capital letters)."""
    return code in ISO_4217_CODES
