"""``otaforge rollout ...`` and ``otaforge device target`` as a user runs them: separate
processes against a real HTTPS server (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from starlette.testclient import TestClient

from otaforge.server.settings import Settings
from tests.conftest import run_cli
from tests.server.conftest import auth, publish, serve_https


def test_rollout_cli_create_show_pause_resume_abort_over_tls(
        settings: Settings, api: TestClient, fleet: str, image_v1: bytes,
        image_v2: bytes) -> None:
    old = publish(api, image_v1)
    publish(api, image_v2, channel=None)
    running = {"fleet": "f1", "chip": "esp32", "version": old["version"],
               "image_sha256": old["sha256"]}
    for i in range(10):
        r = api.post(f"/api/v1/devices/dev{i}/check-in", json=running, headers=auth(fleet))
        assert r.status_code == 204, r.text
    api.app.state.store.flush()  # type: ignore[attr-defined]
    with serve_https(settings) as url:
        env = {"OTAFORGE_SERVER": url, "OTAFORGE_CA": str(settings.ca_cert_path),
               "OTAFORGE_TOKEN": settings.admin_token()}

        def cli(*argv: str) -> tuple[int, str, str]:
            out = run_cli(*argv, env=env)
            return out.returncode, out.stdout, out.stderr

        # bad input: one line, exit 2, nothing created
        for bad, words in ((["--max-failures", "lots"], "--max-failures 'lots'"),
                           (["--soak", "forever"], "--soak 'forever': not a duration"),
                           (["--waves", "50%,10%"], "must not shrink")):
            code, _, err = cli("rollout", "create", "2.0.0", "--fleet", "f1", *bad)
            assert code == 2 and words in err and "Traceback" not in err, err
        assert json.loads(cli("rollout", "list", "--json")[1]) == []

        code, out, err = cli("rollout", "create", "2.0.0", "--fleet", "f1", "--waves",
                             "2,100%", "--canary", "dev0", "--soak", "10m",
                             "--max-failures", "1", "--concurrency", "2", "--rate", "5",
                             "--json")
        assert code == 0, err
        created = json.loads(out)
        rid = created["id"]
        assert (created["state"], created["sizes"], created["wave_name"]) == \
            ("running", [1], "canary")
        plan = created["plan"]
        assert (plan["soak_s"], plan["max_failures"], plan["max_failures_percent"],
                plan["max_in_flight"], plan["rate_per_min"], plan["canary"]) == \
            (600, 1, None, 2, 5.0, ["dev0"])
        assert plan["waves"] == ["2", "100%"]

        code, out, err = cli("rollout", "show", str(rid))
        assert code == 0, err
        assert f"rollout {rid}: f1/stable -> 2.0.0 (release 2), wave 1/3 (canary), " \
            "running" in out
        assert "canary" in out and "2 (not open)" in out and "#1 " in out

        code, _, err = cli("rollout", "create", "2.0.0", "--fleet", "f1")
        assert code == 1 and f"already has rollout {rid}" in err

        code, out, _ = cli("rollout", "pause", str(rid), "--reason", "field report")
        assert code == 0 and "PAUSED: field report" in out
        code, out, _ = cli("rollout", "resume", str(rid))
        assert code == 0 and ", running" in out
        code, out, _ = cli("rollout", "abort", str(rid), "--revert")
        assert code == 0 and "ABORTED" in out and "reverting to the previous release" in out

        code, out, _ = cli("rollout", "list", "--fleet", "f1", "--state", "aborted")
        assert code == 0 and f"{rid}  " in out and "aborted" in out
        code, out, _ = cli("rollout", "show", str(rid), "--decisions", "--json")
        decisions = json.loads(out)["decisions"]
        admin = [d["action"] for d in decisions if d["action"] != "hold"]  # gate ticks
        assert admin == ["create", "pause", "resume", "abort"]  # run in wall time here
        assert decisions[1]["reason"] == "field report"
        code, _, err = cli("rollout", "show", "999")
        assert code == 1 and "no rollout 999" in err

        code, out, err = cli("device", "target", "dev1", "--tag", "lab", "--tag", "eu",
                             "--hw-revision", "rev3")
        assert code == 0, err
        assert "device dev1: tags eu,lab; hardware revision rev3" in out
        code, out, _ = cli("device", "target", "dev1", "--clear-tags", "--json")
        assert json.loads(out)["tags"] == [] and json.loads(out)["hw_revision"] == "rev3"
        code, _, err = cli("device", "target", "dev1", "--tag", "x", "--clear-tags")
        assert code == 2 and "contradict" in err
        code, out, _ = cli("rollout", "penalty-clear", "dev1")
        assert code == 0 and "device dev1: penalty box cleared at" in out
        code, _, err = cli("rollout", "penalty-clear", "ghost")
        assert code == 1 and "no device 'ghost'" in err
