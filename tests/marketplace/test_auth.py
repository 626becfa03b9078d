"""Accounts: registration, tokens, logout, login throttling, bad tokens."""
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from .conftest import PASSWORD, assert_error, coordinator_name, describe, is_id

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def test_register_token_logout(mk):
    response = mk.post(
        "auth/register", json={"username": "Carol_W", "email": "carol@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, describe(response)
    body = response.json()
    assert set(body) == {"id", "username", "email"}, body
    assert is_id(body["id"]) and body["username"] == "Carol_W" and body["email"] == "carol@example.com"

    assert_error(
        mk.post("auth/token", json={"username": "Carol_W", "password": PASSWORD + "x"}), 401, "authentication_failed"
    )
    assert_error(
        mk.post("auth/token", json={"username": "nobody_here", "password": PASSWORD}), 401, "authentication_failed"
    )
    response = mk.post("auth/token", json={"username": "Carol_W", "password": PASSWORD})
    assert response.status_code == 200, describe(response)
    token = response.json()["token"]
    assert isinstance(token, str) and len(token) >= 20

    response = mk.get("wallet", token)
    assert response.status_code == 200 and response.json() == {"balance": "0.00", "currency": "USD"}

    response = mk.post("auth/logout", token)
    assert response.status_code == 204, describe(response)
    assert_error(mk.get("wallet", token), 401, "authentication_failed")
    assert_error(mk.post("auth/logout", token), 401, "authentication_failed")

    # Logging in again gives a working token.
    response = mk.post("auth/token", json={"username": "Carol_W", "password": PASSWORD})
    assert response.status_code == 200, describe(response)
    assert response.json()["token"] != token
    assert mk.get("wallet", response.json()["token"]).status_code == 200


def test_login_is_throttled_per_username(mk):
    victim = mk.register_only()
    bystander = mk.register_only()
    for attempt in range(10):
        response = mk.post("auth/token", json={"username": victim["username"], "password": f"wrong-{attempt}"})
        # (The status of a wrong password is checked in test_register_token_logout.)
        assert response.status_code != 429, f"throttled after {attempt} attempts"
        assert response.json()["error"]["code"] == "authentication_failed", describe(response)
    throttled = mk.post("auth/token", json={"username": victim["username"], "password": "wrong-again"})
    assert_error(throttled, 429, "throttled")
    retry_after = throttled.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit() and 0 < int(retry_after) <= 60, throttled.headers
    # Even the right password is refused while throttled: no guessing through the limit.
    assert_error(
        mk.post("auth/token", json={"username": victim["username"], "password": victim["password"]}), 429, "throttled"
    )
    # Another username from the same address is not affected.
    response = mk.post("auth/token", json={"username": bystander["username"], "password": bystander["password"]})
    assert response.status_code == 200, describe(response)


def test_bad_tokens(mk):
    user = mk.register()
    for header in (
        "Token deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", "Token " + user["token"][::-1], "Token", "Token a b"
    ):
        response = mk.get("wallet", headers={"Authorization": header})
        assert_error(response, 401, "authentication_failed")
    assert mk.get("wallet", user).status_code == 200


def test_simultaneous_registrations_of_one_name(mk):
    """Ten clients register the same username (in different cases) at once: one account."""
    start = threading.Barrier(10)
    names = ["racer", "Racer", "RACER", "rAcer", "raCer", "racEr", "raceR", "RAcer", "RaCeR", "racer"]

    def register(index):
        start.wait(timeout=30)
        payload = {"username": names[index], "email": f"racer{index}@example.com", "password": PASSWORD}
        return mk.post("auth/register", json=payload)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(register, range(10)))
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == 1, [describe(r) for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert_error(response, 409, "username_taken")

    start = threading.Barrier(10)

    def register_email(index):
        start.wait(timeout=30)
        email = "Same.Person@Example.com" if index % 2 else "same.person@example.com"
        payload = {"username": f"person{index}", "email": email, "password": PASSWORD}
        return mk.post("auth/register", json=payload)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(register_email, range(10)))
    assert sum(r.status_code == 201 for r in responses) == 1, [describe(r) for r in responses]
    for response in responses:
        if response.status_code != 201:
            assert_error(response, 409, "email_taken")


def test_a_forged_forwarded_for_header_does_not_start_a_fresh_login_count(mk):
    """Proxy headers are not trusted unless NUM_PROXIES says so: every attempt counts for the username."""
    victim = mk.register_only()
    for attempt in range(10):
        response = mk.post("auth/token", json={"username": victim["username"], "password": f"wrong-{attempt}"},
                           headers={"X-Forwarded-For": f"203.0.113.{attempt + 1}"})
        assert response.status_code == 401, f"attempt {attempt}: {describe(response)}"
    response = mk.post("auth/token", json={"username": victim["username"], "password": victim["password"]},
                       headers={"X-Forwarded-For": "198.51.100.77"})
    assert_error(response, 429, "throttled")


def test_spellings_of_one_username_share_its_login_count(mk):
    """Spaces around it, case and Unicode compatibility forms (NFKC) make no new count."""
    victim = mk.register_only(username="alice")
    fullwidth = "\uff41\uff4c\uff49\uff43\uff45"  # "ａｌｉｃｅ", NFKC: "alice"
    spellings = [" alice", "alice ", "\talice", "ALICE", "Alice ", fullwidth, f" {fullwidth} ", "alice\u3000",
                 "\uff21lice", "alice"]
    for attempt, spelling in enumerate(spellings):
        response = mk.post("auth/token", json={"username": spelling, "password": f"wrong-{attempt}"})
        assert response.status_code == 401, f"{spelling!r}: {describe(response)}"
    assert_error(mk.post("auth/token", json={"username": " alice ", "password": victim["password"]}), 429, "throttled")
    assert_error(mk.post("auth/token", json={"username": "alice", "password": victim["password"]}), 429, "throttled")


@pytest.mark.slow
def test_simultaneous_login_attempts_do_not_slip_through_the_limit(mk):
    """Twenty wrong guesses at once: the count is checked and taken as one step, so at most ten get an answer."""
    victim = mk.register_only()
    start = threading.Barrier(20)

    def guess(index):
        start.wait(timeout=30)
        return mk.post("auth/token", json={"username": victim["username"], "password": f"wrong-{index}"})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(guess, range(20)))
    answered = [r for r in responses if r.status_code != 429]
    assert len(answered) == 10, [describe(r) for r in responses]
    for response in answered:
        assert_error(response, 401, "authentication_failed")


# --------------------------------------------------------------------------- API tokens


def _token_rows(db_rows, user_id):
    return db_rows(coordinator_name(), "SELECT digest, token_key, created, expiry, last_used, client "
                   "FROM accounts_authtoken WHERE user_id = %s ORDER BY created", [int(user_id)])


def test_each_login_makes_its_own_token_and_logout_revokes_only_the_one_it_was_called_with(mk):
    user = mk.register_only()
    credentials = {"username": user["username"], "password": user["password"]}
    phone = mk.post("auth/token", json=credentials, headers={"User-Agent": "phone-app/1.0"})
    laptop = mk.post("auth/token", json=credentials, headers={"User-Agent": "laptop-cli/2.0"})
    assert phone.status_code == laptop.status_code == 200, (describe(phone), describe(laptop))
    phone, laptop = phone.json()["token"], laptop.json()["token"]
    assert phone != laptop
    assert mk.get("wallet", phone).status_code == 200 and mk.get("wallet", laptop).status_code == 200

    assert mk.post("auth/logout", phone).status_code == 204
    assert_error(mk.get("wallet", phone), 401, "authentication_failed")
    assert mk.get("wallet", laptop).status_code == 200  # the other device stays logged in

    tablet = mk.post("auth/token", json=credentials).json()["token"]
    response = mk.post("auth/logout-all", laptop)
    assert response.status_code == 204, describe(response)
    for token in (laptop, tablet):
        assert_error(mk.get("wallet", token), 401, "authentication_failed")
    assert mk.post("auth/token", json=credentials).status_code == 200  # logging in again still works


def test_tokens_are_stored_only_as_a_hash(mk, db_rows):
    user = mk.register()
    token = user["token"]
    # No text column of any table on the coordinator holds the token.
    columns = db_rows(coordinator_name(), "SELECT table_name, column_name FROM information_schema.columns "
                      "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying')")
    for table, column in columns:
        found = db_rows(
            coordinator_name(), f'SELECT count(*) FROM "{table}" WHERE position(%s in "{column}") > 0', [token]
        )
        assert found == [(0,)], f"the token is stored in plain text in {table}.{column}"
    assert len(token) >= 64  # 256 random bits, hex
    rows = _token_rows(db_rows, user["id"])
    assert len(rows) == 1, rows
    digest, token_key = rows[0][:2]
    assert digest == hashlib.sha512(token.encode()).hexdigest()
    assert token_key != token and len(token_key) <= 15  # knox's lookup prefix, not the token


def test_tokens_expire_after_their_lifetime(mk, node_connection):
    user = mk.register_only()
    response = mk.post("auth/token", json={"username": user["username"], "password": user["password"]})
    assert response.status_code == 200, describe(response)
    body = response.json()
    assert set(body) == {"token", "expiry"}, body
    expiry = datetime.fromisoformat(body["expiry"].replace("Z", "+00:00"))
    lifetime = expiry - datetime.now(timezone.utc)
    assert timedelta(days=30) - timedelta(minutes=5) < lifetime <= timedelta(days=30), lifetime
    assert mk.get("wallet", body["token"]).status_code == 200

    with node_connection(coordinator_name()).cursor() as cursor:
        cursor.execute("UPDATE accounts_authtoken SET expiry = now() - interval '1 second' WHERE user_id = %s",
                       [int(user["id"])])
    assert_error(mk.get("wallet", body["token"]), 401, "authentication_failed")


def test_last_use_is_recorded_at_most_once_a_minute(mk, db_rows, node_connection):
    user = mk.register(username=None)
    [row] = _token_rows(db_rows, user["id"])
    assert row[4] is None  # not used yet

    assert mk.get("wallet", user).status_code == 200
    [row] = _token_rows(db_rows, user["id"])
    first_use = row[4]
    assert first_use is not None and abs(datetime.now(timezone.utc) - first_use) < timedelta(minutes=1)
    for _ in range(3):
        assert mk.get("wallet", user).status_code == 200
    [row] = _token_rows(db_rows, user["id"])
    assert row[4] == first_use  # no write within the minute

    with node_connection(coordinator_name()).cursor() as cursor:
        cursor.execute("UPDATE accounts_authtoken SET last_used = now() - interval '61 seconds' WHERE user_id = %s",
                       [int(user["id"])])
    assert mk.get("wallet", user).status_code == 200
    [row] = _token_rows(db_rows, user["id"])
    assert abs(datetime.now(timezone.utc) - row[4]) < timedelta(seconds=30)


# --------------------------------------------------------------------------- password change


def test_password_change_through_the_api_revokes_every_token(mk):
    user = mk.register_only()
    credentials = {"username": user["username"], "password": user["password"]}
    this_device = mk.post("auth/token", json=credentials).json()["token"]
    other_device = mk.post("auth/token", json=credentials).json()["token"]
    new_password = "a-brand-new-passphrase-7"

    assert_error(mk.post("auth/password", json={"old_password": PASSWORD, "new_password": new_password}), 401)
    error = assert_error(
        mk.post("auth/password", this_device, json={"old_password": "not-it", "new_password": new_password}),
        400, "wrong_password",
    )
    assert "old_password" in error["details"], error
    error = assert_error(mk.post("auth/password", this_device, json={"old_password": PASSWORD, "new_password": "123"}),
                         400, "validation_error")
    assert "new_password" in error["details"], error  # Django's password validators apply
    assert_error(mk.post("auth/password", this_device, json={"old_password": PASSWORD}), 400, "validation_error")
    assert mk.get("wallet", this_device).status_code == 200  # nothing changed so far

    response = mk.post("auth/password", this_device, json={"old_password": PASSWORD, "new_password": new_password})
    assert response.status_code == 204, describe(response)
    for token in (this_device, other_device):
        assert_error(mk.get("wallet", token), 401, "authentication_failed")
    assert_error(mk.post("auth/token", json=credentials), 401, "authentication_failed")
    response = mk.post("auth/token", json={**credentials, "password": new_password})
    assert response.status_code == 200, describe(response)
