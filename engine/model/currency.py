"""ISO 4217 currencies and their minor units (decimal places of money).

Amounts are rounded to the currency's minor unit (docs/contract.md#money-and-rounding):
cents for USD, whole yen for JPY, fils for BHD. The table holds the active ISO 4217 codes
that have a minor unit (precious metals, SDRs and testing codes have none and
cannot be used to bill). Most currencies use 2 places; only the exceptions
are listed separately, which keeps the table easy to check against the ISO list.
"""

from __future__ import annotations

_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
    "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS "
    "INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT "
    "MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR "
    "PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP "
    "SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER "
    "ZAR ZMW ZWG ZWL"
)

MINOR_UNITS: dict[str, int] = {
    **{code: 2 for code in _TWO.split()},
    **{code: 0 for code in _ZERO.split()},
    **{code: 3 for code in _THREE.split()},
    **{code: 4 for code in _FOUR.split()},
}
"""ISO 4217 alphabetic code -> number of decimal places."""


def normalize_code(code: object) -> str:
    """``' usd '`` -> ``'USD'`` (codes are written in any case in a workbook)."""
    return str(code).strip().upper()


def minor_unit(code: str) -> int | None:
    """Decimal places of a currency (``'JPY'`` -> 0), or None if the code is unknown."""
    return MINOR_UNITS.get(normalize_code(code))


def is_known(code: str) -> bool:
    return minor_unit(code) is not None
