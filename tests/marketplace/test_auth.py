"""Accounts: registration, tokens, logout, login throttling, bad tokens."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import PASSWORD, assert_error, describe, is_id

pytestmark = pytest.mark.usefixtures("clean_marketplace")


def test_register_token_logout(mk):
    response = mk.post("auth/register", json={"username": "Carol_W", "email": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 201, describe(response)
    body = response.json()
    assert set(body) == {"id", "username", "email"}, body
    assert is_id(body["id"]) and body["username"] == "Carol_W" and body["email"] == "carol@example.com"

    assert_error(mk.post("auth/token", json={"username": "Carol_W", "password": PASSWORD + "x"}), 401, "authentication_failed")
    assert_error(mk.post("auth/token", json={"username": "nobody_here", "password": PASSWORD}), 401, "authentication_failed")
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
    assert_error(mk.post("auth/token", json={"username": victim["username"], "password": victim["password"]}), 429, "throttled")
    # Another username from the same address is not affected.
    response = mk.post("auth/token", json={"username": bystander["username"], "password": bystander["password"]})
    assert response.status_code == 200, describe(response)


def test_bad_tokens(mk):
    user = mk.register()
    for header in ("Token deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", "Token " + user["token"][::-1], "Token", "Token a b"):
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
