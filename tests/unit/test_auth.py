"""Users, roles and password hashes, on a real workspace database."""

from __future__ import annotations

import pytest
from sqlite_utils import Database

from unem import auth
from unem.errors import BadInput, Conflict, NotFound
from unem.workspace import Workspace

PASSWORD = "correct horse battery"


@pytest.fixture
def db(workspace: Workspace) -> Database:
    return workspace.db


def stored_hash(db: Database, name: str) -> str:
    return str(next(db["users"].rows_where("name = ?", [name]))["password_hash"])


def test_hashes_are_salted_scrypt_and_verify() -> None:
    first, second = auth.hash_password(PASSWORD), auth.hash_password(PASSWORD)
    assert first != second and first.startswith("scrypt$") and PASSWORD not in first
    assert auth.verify_password(PASSWORD, first) and auth.verify_password(PASSWORD, second)
    assert not auth.verify_password(PASSWORD + "!", first)
    assert not auth.verify_password("", first)


@pytest.mark.parametrize(
    "stored",
    ["", "plain", "md5$x$y$z$a$b", "scrypt$16384$8$1$zz$zz", "scrypt$x$8$1$00$00", "scrypt$$$$$"],
)
def test_malformed_hashes_never_match(stored: str) -> None:
    assert auth.verify_password(PASSWORD, stored) is False


def test_accounts_keep_only_a_hash(db: Database) -> None:
    user = auth.create_user(db, "eve", "viewer", PASSWORD)
    assert user == auth.User(user.id, "eve", "viewer")
    assert PASSWORD not in stored_hash(db, "eve")
    assert auth.authenticate(db, "eve", PASSWORD) == user
    assert auth.authenticate(db, "eve", "wrong password") is None
    assert auth.authenticate(db, "nobody", PASSWORD) is None


def test_the_launcher_account_has_no_password(db: Database) -> None:
    admin = auth.ensure_admin(db)
    assert admin.role == "admin" and auth.ensure_admin(db) == admin
    assert stored_hash(db, "admin") == ""
    assert auth.authenticate(db, "admin", "") is None
    assert auth.authenticate(db, "admin", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "role", "password", "error"),
    [
        ("bob", "viewer", "short", BadInput),
        ("bob", "root", PASSWORD, BadInput),
        ("bo b", "viewer", PASSWORD, BadInput),
        ("../bob", "viewer", PASSWORD, BadInput),
        ("", "viewer", PASSWORD, BadInput),
        ("b" * 65, "viewer", PASSWORD, BadInput),
        ("admin", "viewer", PASSWORD, Conflict),
    ],
)
def test_bad_accounts_are_refused(
    db: Database, name: str, role: str, password: str, error: type[Exception]
) -> None:
    auth.ensure_admin(db)
    with pytest.raises(error):
        auth.create_user(db, name, role, password)
    assert [u.name for u in auth.list_users(db)] == ["admin"]


def test_permissions_of_the_roles() -> None:
    def allowed(role: str) -> set[str]:
        return {a for a in ("view", "edit", "admin") if auth.User(1, "u", role).can(a)}

    assert allowed("admin") == {"view", "edit", "admin"}
    assert allowed("proofreader") == {"view", "edit"}
    assert allowed("viewer") == {"view"}
    assert allowed("ghost") == set()


def test_updates_are_checked_before_anything_is_written(db: Database) -> None:
    auth.create_user(db, "kim", "viewer", PASSWORD)
    before = stored_hash(db, "kim")
    with pytest.raises(BadInput):
        auth.update_user(db, "kim", role="proofreader", password="short")
    with pytest.raises(BadInput):
        auth.update_user(db, "kim", role="boss", password="a long new password")
    assert stored_hash(db, "kim") == before and auth.require_user(db, "kim").role == "viewer"
    user = auth.update_user(db, "kim", role="proofreader", password="a long new password")
    assert user.role == "proofreader" == auth.require_user(db, "kim").role
    assert auth.authenticate(db, "kim", "a long new password") == user
    with pytest.raises(NotFound):
        auth.update_user(db, "nobody", role="viewer")


def test_the_last_admin_is_kept(db: Database) -> None:
    # no launcher account here, so the rule about the last admin is what refuses
    auth.create_user(db, "ada", "admin", PASSWORD)
    with pytest.raises(BadInput, match="one admin must remain"):
        auth.set_role(db, "ada", "viewer")
    with pytest.raises(BadInput, match="one admin must remain"):
        auth.delete_user(db, "ada")
    auth.create_user(db, "bea", "admin", PASSWORD)
    auth.set_role(db, "ada", "viewer")
    with pytest.raises(BadInput, match="one admin must remain"):
        auth.delete_user(db, "bea")
    auth.delete_user(db, "ada")
    assert [(u.name, u.role) for u in auth.list_users(db)] == [("bea", "admin")]


def test_the_launcher_account_stays_an_admin(db: Database) -> None:
    auth.ensure_admin(db)
    auth.create_user(db, "ada", "admin", PASSWORD)
    with pytest.raises(BadInput, match="stays an admin"):
        auth.set_role(db, "admin", "viewer")
    with pytest.raises(BadInput, match="cannot be deleted"):
        auth.delete_user(db, "admin")
    auth.set_password(db, "admin", PASSWORD)  # an admin may give it a password
    assert auth.authenticate(db, "admin", PASSWORD) == auth.ensure_admin(db)


def test_tokens_are_random_and_long() -> None:
    tokens = {auth.new_token() for _ in range(10)}
    assert len(tokens) == 10 and all(len(t) >= 32 for t in tokens)
