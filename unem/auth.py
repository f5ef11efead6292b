"""Users, roles and password hashes. No web framework here: the web layer calls these."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from unem.errors import BadInput, Conflict, NotFound

ROLES = ("admin", "proofreader", "viewer")
# What each role may do; every check in the web layer goes through `can`.
PERMISSIONS = {
    "admin": {"view", "edit", "admin"},
    "proofreader": {"view", "edit"},
    "viewer": {"view"},
}
ADMIN_NAME = "admin"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD_LENGTH = 8
# scrypt parameters (RFC 7914 interactive-login strength; ~50 ms, 16 MiB per hash)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, set())

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; a malformed hash never matches."""
    try:
        method, n, r, p, salt, digest = stored.split("$")
        if method != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
        return hmac.compare_digest(actual, bytes.fromhex(digest))
    except ValueError:
        return False


def _user(row: dict[str, Any]) -> User:
    return User(id=row["id"], name=row["name"], role=row["role"])


def _check_name_and_role(name: str, role: str) -> None:
    if not NAME_PATTERN.match(name):
        raise BadInput("A user name has 1 to 64 letters, digits, dots, dashes or underscores.")
    if role not in ROLES:
        raise BadInput(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")


def create_user(db: Database, name: str, role: str, password: str | None) -> User:
    """Add an account; `password=None` makes one that can only log in with the admin token."""
    _check_name_and_role(name, role)
    if password is not None:
        _check_password(password)
    if find_user(db, name) is not None:
        raise Conflict(f"A user named {name!r} already exists.")
    row = {
        "name": name,
        "role": role,
        "password_hash": hash_password(password) if password is not None else "",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    user_id = db.table("users").insert(row).last_pk
    return User(id=int(str(user_id)), name=name, role=role)


def ensure_admin(db: Database) -> User:
    """The account the launcher's token logs in as; created on first start."""
    return find_user(db, ADMIN_NAME) or create_user(db, ADMIN_NAME, "admin", None)


def find_user(db: Database, name: str) -> User | None:
    rows = list(db["users"].rows_where("name = ?", [name]))
    return _user(rows[0]) if rows else None


def get_user(db: Database, user_id: int) -> User | None:
    rows = list(db["users"].rows_where("id = ?", [user_id]))
    return _user(rows[0]) if rows else None


def require_user(db: Database, name: str) -> User:
    user = find_user(db, name)
    if user is None:
        raise NotFound(f"No user named {name!r}.")
    return user


def list_users(db: Database) -> list[User]:
    return [_user(row) for row in db["users"].rows_where(order_by="name")]


def authenticate(db: Database, name: str, password: str) -> User | None:
    """The user if `password` is theirs; None otherwise (same answer for unknown names)."""
    rows = list(db["users"].rows_where("name = ?", [name]))
    stored = rows[0]["password_hash"] if rows else ""
    if not stored:
        hash_password(password)  # spend the same time, so names cannot be probed by timing
        return None
    return _user(rows[0]) if verify_password(password, stored) else None


def set_password(db: Database, name: str, password: str) -> None:
    update_user(db, name, password=password)


def set_role(db: Database, name: str, role: str) -> User:
    return update_user(db, name, role=role)


def update_user(
    db: Database, name: str, *, role: str | None = None, password: str | None = None
) -> User:
    """Change a user's role and/or password: both are checked before either is written."""
    user = require_user(db, name)
    changes: dict[str, str] = {}
    if role is not None and role != user.role:
        _check_name_and_role(name, role)
        if name == ADMIN_NAME:
            raise BadInput("The launcher's admin account stays an admin.")
        if user.role == "admin":
            _refuse_removing_last_admin(db, user)
        changes["role"] = role
    if password is not None:
        _check_password(password)
        changes["password_hash"] = hash_password(password)
    if changes:
        db.table("users").update(user.id, changes)
    return User(id=user.id, name=name, role=changes.get("role", user.role))


def delete_user(db: Database, name: str) -> None:
    user = require_user(db, name)
    if name == ADMIN_NAME:
        raise BadInput("The launcher's admin account cannot be deleted.")
    if user.role == "admin":
        _refuse_removing_last_admin(db, user)
    db.table("users").delete(user.id)


def _refuse_removing_last_admin(db: Database, user: User) -> None:
    admins = [u for u in list_users(db) if u.role == "admin" and u.id != user.id]
    if not admins:
        raise BadInput("At least one admin must remain.")


def new_token() -> str:
    """A random token for the launcher's admin URL."""
    return secrets.token_urlsafe(24)
