"""Signing in, registering, signing out and the account page, with their CSRF checks."""

from __future__ import annotations

import re
from typing import Any

from covernet.core.db import unit_of_work
from covernet.identity import service
from covernet.identity.models import Role
from tests.web.pagetree import parse

HTML = {"accept": "text/html"}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(client: Any, path: str) -> str:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200
    found = TOKEN.search(response.text)
    assert found is not None
    return found.group(1)


def session_cookie(response: Any) -> str:
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    return next(c for c in cookies if c.startswith("covernet_session="))


def log_in(client: Any, customer: dict[str, str], **extra: str) -> Any:
    token = form_token(client, "/login")
    data = {"csrf_token": token, "mobile": customer["mobile"], "password": customer["password"]}
    return client.post("/login", data={**data, **extra}, headers=HTML, follow_redirects=False)


def test_login_page_sets_the_double_submit_cookie(client: Any) -> None:
    response = client.get("/login", headers=HTML)
    token = TOKEN.search(response.text)
    assert token is not None
    assert client.cookies.get("covernet_csrf") == token.group(1)
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie")
    assert "HttpOnly" in cookie and "Secure" in cookie
    doc = parse(response.text)
    assert doc.one("h1").text == "登录"
    assert doc.one("input", name="mobile").attrs["type"] == "tel"
    # The same token is reused while the cookie lasts: two tabs both work.
    assert form_token(client, "/register") == token.group(1)


def test_customer_logs_in_and_out(client: Any, customer: dict[str, str]) -> None:
    response = log_in(client, customer)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = session_cookie(response)
    for attribute in ("HttpOnly", "Secure", "SameSite=lax", "Max-Age=43200", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie

    account = client.get("/account", headers=HTML)
    assert account.status_code == 200
    doc = parse(account.text)
    text = doc.one("main").text
    assert customer["name"] in text
    assert "139****5678" in text and customer["mobile"] not in account.text
    assert doc.one("meta", name="csrf-token")
    home = parse(client.get("/", headers=HTML).text)
    assert home.one("a", href="/account").text == "我的账户"

    refused = client.post("/logout", data={}, headers=HTML, follow_redirects=False)
    assert refused.status_code == 403
    assert "页面已过期" in parse(refused.text).one("main").text
    wrong = client.post(
        "/logout", data={"csrf_token": "nope"}, headers=HTML, follow_redirects=False
    )
    assert wrong.status_code == 403
    assert client.get("/account", headers=HTML, follow_redirects=False).status_code == 200

    token = TOKEN.search(account.text)
    assert token is not None
    out = client.post(
        "/logout", data={"csrf_token": token.group(1)}, headers=HTML, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/"
    assert 'covernet_session=""' in session_cookie(out) or "Max-Age=0" in session_cookie(out)
    gone = client.get("/account", headers=HTML, follow_redirects=False)
    assert gone.status_code == 303


def test_login_refuses_a_missing_or_wrong_csrf_token(client: Any, customer: dict[str, str]) -> None:
    form_token(client, "/login")
    data = {"mobile": customer["mobile"], "password": customer["password"]}
    for extra in ({}, {"csrf_token": "forged.token"}, {"csrf_token": "中文"}):
        response = client.post(
            "/login", data={**data, **extra}, headers=HTML, follow_redirects=False
        )
        assert response.status_code == 403
        assert "页面已过期" in parse(response.text).by_id("form-error").text
        assert "covernet_session" not in response.headers.get("set-cookie", "")
    # A token without its cookie (another browser's) is refused too.
    token = form_token(client, "/login")
    client.cookies.delete("covernet_csrf")
    response = client.post(
        "/login", data={**data, "csrf_token": token}, headers=HTML, follow_redirects=False
    )
    assert response.status_code == 403


def test_wrong_password_is_explained_and_throttled(client: Any, customer: dict[str, str]) -> None:
    wrong = {**customer, "password": "not-the-password1"}
    response = log_in(client, wrong)
    assert response.status_code == 401
    doc = parse(response.text)
    assert doc.by_id("form-error").text == "账号或密码不正确。"
    assert doc.one("input", name="mobile").attrs["value"] == customer["mobile"]
    assert doc.one("input", name="password").attrs.get("value") is None
    for _ in range(4):
        log_in(client, wrong)
    throttled = log_in(client, customer)  # even the right password waits now
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "900"
    assert parse(throttled.text).by_id("form-error").text == "登录失败次数过多，请15分钟后再试。"
    client.get("/?lang=en", headers=HTML)
    english = log_in(client, customer)
    assert "Too many failed logins; try again in 15 minutes." in english.text


def test_login_goes_back_to_where_it_was_asked_for(client: Any, customer: dict[str, str]) -> None:
    asked = client.get("/account", headers=HTML, follow_redirects=False)
    assert asked.status_code == 303
    assert asked.headers["location"] == "/login?next=/account"
    page = parse(client.get("/login?next=/account", headers=HTML).text)
    assert page.one("input", name="next").attrs["value"] == "/account"
    response = log_in(client, customer, next="/account")
    assert response.headers["location"] == "/account"


def test_login_never_redirects_off_the_site(client: Any, customer: dict[str, str]) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"):
        client.cookies.clear()
        response = log_in(client, customer, next=target)
        assert response.status_code == 303
        assert response.headers["location"] == "/", target


def test_register_signs_the_new_customer_in(client: Any) -> None:
    token = form_token(client, "/register")
    data = {
        "csrf_token": token,
        "mobile": "137 0000 1111",
        "name": " 李 四 ",
        "password": "good-pass-1",
    }
    response = client.post("/register", data=data, headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert session_cookie(response)
    account = parse(client.get("/account", headers=HTML).text)
    assert "李 四" in account.one("main").text
    assert "137****1111" in account.one("main").text


def test_register_explains_what_is_wrong(client: Any, customer: dict[str, str]) -> None:
    token = form_token(client, "/register")
    base = {"csrf_token": token, "mobile": "13700002222", "name": "王五", "password": "good-pass-1"}
    cases = [
        ({"mobile": customer["mobile"]}, 409, "该手机号已注册，请直接登录。", "mobile"),
        ({"mobile": "12345"}, 400, "请填写正确的11位手机号。", "mobile"),
        ({"password": "short1"}, 400, "密码需为8至128位", "password"),
        ({"password": "onlyletters"}, 400, "密码需为8至128位", "password"),
        ({"name": ""}, 400, "姓名需为1至50个字符。", "name"),
    ]
    for change, status, message, field in cases:
        response = client.post(
            "/register", data={**base, **change}, headers=HTML, follow_redirects=False
        )
        assert response.status_code == status, change
        doc = parse(response.text)
        assert message in doc.by_id("form-error").text
        assert doc.one("input", name=field).attrs.get("aria-invalid") == "true"
        assert "covernet_session" not in response.headers.get("set-cookie", "")
    missing = client.post("/register", data={**base, "csrf_token": ""}, headers=HTML)
    assert missing.status_code == 403


def test_staff_sign_in_with_the_authenticator_code(client: Any, db_url: str) -> None:
    with unit_of_work(db_url) as db:
        enrolled = service.add_staff(
            db, username="ops.lee", role=Role.ops, password="staff-pass-1", name="李运营"
        )
        secret = enrolled.totp_secret
    page = parse(client.get("/login?as=staff", headers=HTML).text)
    assert page.one("a", cls="tabs__tab", aria_current="page").text == "员工登录"
    assert page.one("input", name="as").attrs["value"] == "staff"
    assert page.select("input", name="totp") and not page.select("input", name="mobile")
    token = form_token(client, "/login?as=staff")
    data = {"csrf_token": token, "as": "staff", "username": "ops.lee", "password": "staff-pass-1"}

    missing = client.post("/login", data=data, headers=HTML, follow_redirects=False)
    assert missing.status_code == 401
    doc = parse(missing.text)
    assert doc.by_id("form-error").text == "请填写身份验证器中的6位动态验证码。"
    assert doc.one("input", name="username").attrs["value"] == "ops.lee"
    assert doc.one("input", name="totp").attrs["aria-invalid"] == "true"

    code = service.current_totp(secret)
    response = client.post(
        "/login", data={**data, "totp": code}, headers=HTML, follow_redirects=False
    )
    assert response.status_code == 303
    account = parse(client.get("/account", headers=HTML).text).one("main").text
    assert "李运营" in account and "运营" in account and "ops.lee" in account

    # A second sign-in from the same browser ends the first session.
    first = client.cookies.get("covernet_session")
    again = form_token(client, "/login?as=staff")
    later = client.post(
        "/login",
        data={**data, "csrf_token": again, "totp": "000000"},
        headers=HTML,
        follow_redirects=False,
    )
    assert later.status_code == 401
    assert client.cookies.get("covernet_session") == first


def test_signed_in_quote_form_carries_the_session_token(
    client: Any, customer: dict[str, str]
) -> None:
    log_in(client, customer)
    doc = parse(client.get("/products/accident-monthly", headers=HTML).text)
    token = doc.one("meta", name="csrf-token").attrs["content"]
    assert doc.one("form", cls="quote-form").one("input", name="csrf_token").attrs["value"] == token
    form = {"plan_code": "basic", "birth_date": "1990-05-20", "gender": "F", "region": "310000"}
    refused = client.post("/products/accident-monthly/quote", data=form, headers=HTML)
    assert refused.status_code == 403
    accepted = client.post(
        "/products/accident-monthly/quote", data={**form, "csrf_token": token}, headers=HTML
    )
    assert accepted.status_code == 200
    result = parse(accepted.text).by_id("quote-result")
    assert result.one(data_slot="premium").text == "¥5.00"
