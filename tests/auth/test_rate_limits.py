"""Rate limits on sign-in and on the public help form (checked in a fresh process: the limiter's storage is
process-wide, and the other tests run with limits off)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent('''
    import json, re, sys, tempfile
    from flask_migrate import upgrade
    from sau import create_app
    from sau.extensions import db
    from sau.orgs.loader import DEMO_FILE, load_file
    from sau.clock import now_utc
    app = create_app("test", {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + tempfile.mkdtemp() + "/rl.sqlite3", "RATELIMIT_ENABLED": True,
        "RATELIMIT_SIGN_IN": "3 per minute", "RATELIMIT_HELP_FORM": "4 per minute",
    })
    with app.app_context():
        upgrade()
        load_file(DEMO_FILE, now_utc())
        db.session.commit()
    client = app.test_client()
    out = {"login": [], "help": [], "api": []}
    for _ in range(5):
        out["login"].append(client.get("/auth/login").status_code)
    for _ in range(6):
        r = client.post("/api/v1/requests", json={})
        out["api"].append([r.status_code, r.headers.get("Retry-After"), r.get_json()])
    page = client.get("/aide?service=toodego").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    for _ in range(5):
        r = client.post("/aide?service=toodego", data={"csrf_token": token})
        out["help"].append([r.status_code, "patienter" in r.get_data(as_text=True)])
    print(json.dumps(out))
''')


def test_sign_in_and_help_form_are_rate_limited() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["login"][:3] != [429, 429, 429] and out["login"][3:] == [429, 429]
    statuses = [s for s, _, _ in out["api"]]
    assert 429 not in statuses[:4] and statuses[4:] == [429, 429]
    _status, retry_after, body = out["api"][-1]
    assert retry_after and body["error"]["code"] == "rate_limited" and "patienter" in body["error"]["message"]
    # The help form: invalid submissions (422) count too.
    assert [s for s, _ in out["help"][:4]] == [422] * 4 and out["help"][4] == [429, True]
