"""Local accounts: passwords hashed with argon2 (pwdlib), sign-ins throttled per user and address.

A wrong user name and a wrong password take the same time and give the same
answer, so the sign-in form does not tell a stranger which user names exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pwdlib import PasswordHash

from costloop.portal.store import Account, Store, now

MAX_FAILURES = 5
"""Failed sign-ins for one user from one address before it is refused for a while."""
LOCKOUT = dt.timedelta(minutes=15)

_hasher = PasswordHash.recommended()  # argon2id with pwdlib's current parameters
_DUMMY = _hasher.hash("a password nobody has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True)
class SignIn:
    """The answer to one sign-in attempt."""

    account: Account | None
    throttled_for: dt.timedelta | None = None
    """How long this user is refused from this address (None: not throttled)."""


def sign_in(store: Store, user_name: str, password: str, address: str) -> SignIn:
    """Check a password; a throttled user is refused without looking at the password."""
    since = now() - LOCKOUT
    if store.recent_failures(user_name, address, since) >= MAX_FAILURES:
        opens = store.oldest_failure(user_name, address, since) + LOCKOUT
        return SignIn(None, max(opens - now(), dt.timedelta(seconds=1)))
    stored = store.password_hash(user_name)
    good = _hasher.verify(password, stored if stored is not None else _DUMMY)
    if stored is None or not good:
        store.record_failure(user_name, address)
        return SignIn(None)
    store.clear_failures(user_name, address)
    return SignIn(store.account(user_name))
