"""The dashboard in a real browser (Debian's chromium, Playwright) against a real HTTPS
server the test fed through the device API: logging in, every view showing that data (on a
laptop and a phone screen), live progress without a reload, the pause/resume button stopping
and restarting offers, revoking a device token, a viewer refused (403) on publish, a forged
CSRF token refused, and the audit log naming who did what. Screenshots of every view go to
``OTAFORGE_UI_ARTIFACTS`` (else a temporary directory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from otaforge.crypto.sbv2 import sign_v2
from otaforge.formats.image_builder import build_image
from tests.ui.conftest import CHIP, PASSWORDS, Fed

LAPTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def _login(browser: Any, fed: Fed, user: str, viewport: dict[str, int] = LAPTOP) -> Page:
    ctx = browser.new_context(ignore_https_errors=True, viewport=viewport,
                              base_url=fed.url)
    page: Page = ctx.new_page()
    page.goto("/ui/")
    expect(page).to_have_url(f"{fed.url}/ui/login?next=%2Fui%2F")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORDS[user])
    page.click("button[type=submit]")
    expect(page.locator("header .who")).to_contain_text(user)
    return page


@pytest.fixture
def ops(browser: Any, fed: Fed) -> Iterator[Page]:
    page = _login(browser, fed, "ops")
    yield page
    page.context.close()


def test_login_refuses_a_wrong_password(browser: Any, fed: Fed, artifacts: Path) -> None:
    ctx = browser.new_context(ignore_https_errors=True, base_url=fed.url)
    page = ctx.new_page()
    page.goto("/ui/login")
    page.fill("input[name=name]", "ops")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("wrong user name or password")
    page.screenshot(path=str(artifacts / "login.png"))
    cookies = {c["name"]: c for c in ctx.cookies()}
    assert "otaforge_session" not in cookies
    ctx.close()


def test_session_cookie_is_secure_httponly_strict(ops: Page) -> None:
    cookie = {c["name"]: c for c in ops.context.cookies()}["otaforge_session"]
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "Strict")


def test_overview_shows_the_fed_fleet(ops: Page, fed: Fed, artifacts: Path) -> None:
    ops.goto("/ui/")
    expect(ops.locator("#count-devices b")).to_have_text("68")
    expect(ops.locator("#count-online b")).to_have_text("68")
    expect(ops.locator("#health-confirmed b")).to_have_text("3")
    expect(ops.locator("#health-rolled_back b")).to_have_text("1")
    expect(ops.locator("#health-pending_verify b")).to_have_text("1")
    expect(ops.locator("#health-updating b")).to_have_text("3")
    chart = ops.locator("#versions-chart")
    expect(chart).to_contain_text("0.9")
    expect(chart).to_contain_text("1.0.0")
    ops.screenshot(path=str(artifacts / "overview.png"), full_page=True)


def test_overview_fits_a_phone(browser: Any, fed: Fed, artifacts: Path) -> None:
    page = _login(browser, fed, "vera", PHONE)
    expect(page.locator("#count-devices b")).to_have_text("68")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"page is {width}px wide on a {PHONE['width']}px phone"
    page.screenshot(path=str(artifacts / "overview-phone.png"), full_page=True)
    page.goto("/ui/devices")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(artifacts / "devices-phone.png"), full_page=True)
    page.context.close()


def test_device_list_filters_and_pages(ops: Page, fed: Fed, artifacts: Path) -> None:
    ops.goto("/ui/devices")
    expect(ops.locator("h1 small")).to_have_text("68")
    expect(ops.locator("#devices tbody tr")).to_have_count(50)
    ops.screenshot(path=str(artifacts / "devices.png"), full_page=True)
    ops.click("a[rel=next]")
    expect(ops.locator(".pager span")).to_have_text("page 2 of 2")
    expect(ops.locator("#devices tbody tr")).to_have_count(18)
    ops.goto("/ui/devices")
    ops.fill("input[name=version]", "1.0.0")
    ops.click(".filters button")
    rows = ops.locator("#devices tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("dev-a")
    expect(rows.first).to_contain_text("confirmed")
    ops.goto("/ui/devices?q=dev-f")
    expect(ops.locator("#devices tbody tr progress")).to_have_attribute(
        "value", str(100 * 50_000 // fed.size_v1))


def test_device_page_shows_history_and_slots(ops: Page, artifacts: Path) -> None:
    ops.goto("/ui/devices")
    ops.click("text=dev-d")
    expect(ops.locator("h1")).to_have_text("Device dev-d")
    expect(ops.locator("#otadata")).to_have_text("aborted")
    expect(ops.locator("#slots")).to_contain_text("ota_1")
    expect(ops.locator("#events")).to_contain_text("rolled_back")
    expect(ops.locator("#events")).to_contain_text("sensor bus not found")
    expect(ops.locator("#deployments tbody tr").first).to_contain_text("1.0.0")
    ops.screenshot(path=str(artifacts / "device.png"), full_page=True)


def test_revoke_button_ends_the_device_token(ops: Page, fed: Fed) -> None:
    token = fed.tokens["lab-07"]
    assert fed.check_in("lab-07", token, version="0.9").status_code == 204
    ops.goto("/ui/devices/lab-07")
    expect(ops.locator("#token-state")).to_have_text("active")
    ops.click("#revoke-token")
    expect(ops.locator("#token-state")).to_have_text("revoked")
    assert fed.check_in("lab-07", token, version="0.9").status_code == 401


def test_releases_show_signer_downloads_and_rates(ops: Page, fed: Fed,
                                                  artifacts: Path) -> None:
    ops.goto("/ui/releases")
    row = ops.locator("#releases-f1 tbody tr").first
    expect(row).to_contain_text("1.0.0")
    expect(row).to_contain_text(fed.sha_v1[:16])
    expect(row).to_contain_text("key 1 of the fleet")
    expect(row).to_contain_text("eFuse digest")
    cells = row.locator("td")
    expect(cells.nth(5)).to_have_text("5")  # a, b, c and the rolled-back d and e downloaded
    expect(cells.nth(6)).to_contain_text("37.5%")  # 3 of 8 offers confirmed
    expect(cells.nth(7)).to_contain_text("12.5%")  # 1 of 8 rolled back
    ops.screenshot(path=str(artifacts / "releases.png"), full_page=True)


def test_live_progress_and_pause_button(ops: Page, fed: Fed, artifacts: Path) -> None:
    ops.goto("/ui/rollouts")
    row = ops.locator("#channel-f1-stable")
    expect(row).to_contain_text("3 / 8")
    # dev-e confirms while the page is open: the progress moves without a reload
    dep = fed.check_in("dev-e", version="0.9").json()["deployment_id"]
    fed.report("dev-e", "e2", "confirmed", dep)
    fed.check_in("dev-e", version="1.0.0", image_sha256=fed.sha_v1, otadata_state="valid")
    expect(row).to_contain_text("4 / 8", timeout=20_000)
    ops.screenshot(path=str(artifacts / "rollouts.png"), full_page=True)
    assert fed.check_in("new-1", version="0.9").status_code == 200
    row.locator("button.pause").click()
    expect(row).to_contain_text("paused by ops")
    assert fed.check_in("new-2", version="0.9").status_code == 204  # no offers while paused
    row.locator("button.resume").click()
    expect(row.locator("button.pause")).to_be_visible()
    assert fed.check_in("new-2", version="0.9").status_code == 200


def test_wave_rollout_progresses_and_its_buttons_act(ops: Page, fed: Fed,
                                                    artifacts: Path) -> None:
    v2 = sign_v2(build_image(version="2.0.0", chip=CHIP, size=120_000, seed=4), [fed.key])
    with fed.client(fed.settings.admin_token()) as admin:
        rel = admin.post("/api/v1/fleets/f1/releases", content=v2)
        assert rel.status_code == 201, rel.text
        r = admin.post("/api/v1/fleets/f1/rollouts", json={
            "release": "2.0.0", "channel": "stable", "waves": "1,100%",
            "from_versions": ["1.0.0"], "confirm_percent": 100, "soak_s": 0})
        assert r.status_code == 201, r.text
        rollout = r.json()["id"]
    on_v1 = {"version": "1.0.0", "image_sha256": fed.sha_v1, "otadata_state": "valid"}
    ops.goto("/ui/rollouts")
    section = ops.locator(f"#rollout-{rollout}")
    expect(section).to_contain_text("running")
    offered = {}
    for dev in ("dev-a", "dev-b", "dev-c", "dev-e"):
        got = fed.check_in(dev, **on_v1)
        if got.status_code == 200:
            offered[dev] = got.json()
    assert len(offered) == 1, offered  # the first wave is one device
    (dev, manifest), = offered.items()
    fed.report(dev, "r1", "confirmed", manifest["deployment_id"])
    fed.check_in(dev, version="2.0.0", image_sha256=manifest["sha256"], otadata_state="valid")
    first = section.locator("tbody tr").first.locator("td")
    expect(first.nth(2)).to_have_text("1", timeout=20_000)  # reached: at the next poll
    expect(first.nth(5)).to_have_text("1", timeout=20_000)  # soaked: live, no reload
    with fed.client(fed.settings.admin_token()) as admin:
        assert admin.post(f"/api/v1/rollouts/{rollout}/evaluate").status_code == 200
    expect(section.locator("tr.current")).to_contain_text("100%", timeout=20_000)
    ops.screenshot(path=str(artifacts / "rollouts-waves.png"), full_page=True)
    with fed.client(fed.settings.admin_token()) as admin:
        text = admin.get("/metrics").text
    gauges = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for fam in text_string_to_metric_families(text) for s in fam.samples}
    where = (("channel", "stable"), ("fleet", "f1"))
    assert gauges[("otaforge_rollout_wave", (*where, ("rollout", str(rollout))))] == 1
    assert gauges[("otaforge_rollout_paused", (*where, ("kind", "rollout"),
                                               ("state", "running")))] == 0
    section.locator("button.pause").click()
    expect(section).to_contain_text("paused by ops")
    others = [d for d in ("dev-a", "dev-b", "dev-c", "dev-e") if d != dev]
    assert fed.check_in(others[0], **on_v1).status_code == 204  # paused: no new offers
    section.locator("button.resume").click()
    expect(section.locator(".state-running")).to_be_visible()
    assert fed.check_in(others[0], **on_v1).status_code == 200
    section.locator("button.abort").click()
    expect(section.locator(".state-aborted")).to_be_visible()
    expect(section.locator("button")).to_have_count(0)
    assert fed.check_in(others[1], **on_v1).status_code == 204


def test_viewer_refused_on_publish(browser: Any, fed: Fed) -> None:
    page = _login(browser, fed, "vera")
    page.goto("/ui/releases")
    expect(page.locator("#publish-form")).to_have_count(0)
    expect(page.locator("#channel-f1-stable button")).to_have_count(0)
    csrf = page.locator("meta[name=csrf]").get_attribute("content")
    r = page.request.post("/ui/releases/publish", multipart={
        "csrf": csrf or "", "fleet": "f1",
        "image": {"name": "x.bin", "mimeType": "application/octet-stream", "buffer": b"x"}})
    assert r.status == 403
    assert "operator role" in r.text()
    page.context.close()


def test_forged_csrf_token_is_refused(ops: Page, fed: Fed) -> None:
    ops.goto("/ui/rollouts")
    r = ops.request.post("/ui/channels/f1/stable/pause", form={"csrf": "forged"})
    assert r.status == 403
    r = ops.request.post("/ui/channels/f1/stable/pause", form={})
    assert r.status == 403
    ops.reload()
    expect(ops.locator("#channel-f1-stable")).not_to_contain_text("paused")


def test_admin_gives_view_only_access_and_retires_a_device(browser: Any, fed: Fed,
                                                  artifacts: Path) -> None:
    admin = _login(browser, fed, "ada")
    admin.click("header nav >> text=Users")
    admin.fill("#user-add input[name=name]", "carol")
    admin.select_option("#user-add select[name=role]", "viewer")
    admin.click("#user-add button")
    password = admin.locator("#new-password").inner_text()
    expect(admin.locator("#user-carol")).to_contain_text("viewer")
    admin.screenshot(path=str(artifacts / "users.png"), full_page=True)
    PASSWORDS["carol"] = password
    carol = _login(browser, fed, "carol")
    expect(carol.locator("#count-devices b")).to_have_text("70")  # 68 + new-1, new-2
    expect(carol.locator("header nav")).not_to_contain_text("Users")
    assert carol.goto("/ui/users").status == 403  # type: ignore[union-attr]
    admin.goto("/ui/devices/lab-08")
    admin.click("#retire-device")
    expect(admin.locator(".facts").first).to_contain_text("Retired")
    assert fed.check_in("lab-08", fed.tokens["lab-08"], version="0.9").status_code == 401
    admin.goto("/ui/users")
    admin.locator("#user-carol button").click()
    carol.goto("/ui/")
    expect(carol).to_have_url(f"{fed.url}/ui/login?next=%2Fui%2F")  # her session ended
    admin.context.close()
    carol.context.close()


def test_audit_log_names_who_did_what(ops: Page, artifacts: Path) -> None:
    ops.goto("/ui/audit")
    table = ops.locator("#audit")
    expect(table).to_contain_text("ui_channel_control")
    refused = ops.locator("#audit tr.result-refused")
    expect(refused.filter(has_text="vera")).to_contain_text("ui_publish")
    expect(refused.filter(has_text="forged").or_(refused.filter(has_text="ops")).first
           ).to_be_visible()
    ok = ops.locator("#audit tr.result-ok").filter(has_text="f1/stable/pause")
    expect(ok.first).to_contain_text("ops")
    ops.screenshot(path=str(artifacts / "audit.png"), full_page=True)


def test_metrics_match_the_traffic(fed: Fed) -> None:
    with fed.client(fed.settings.admin_token()) as admin:
        text = admin.get("/metrics").text
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert got[("otaforge_downloads_total", (("status", "200"),))] == 6
    assert got[("otaforge_deployments", (("state", "rolled_back"),))] == 1
    assert got[("otaforge_check_ins_total", (("result", "refused"),))] >= 1  # revoked lab-07
