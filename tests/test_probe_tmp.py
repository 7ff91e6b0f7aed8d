def test_probe(app, client, login_as, make_request):
    ref = make_request()
    c = login_as("agent_ecully")
    html = c.get(f"/agent/tickets/{ref}").get_data(as_text=True)
    import re
    print("\n".join(l for l in html.splitlines() if 'version' in l or 'csrf' in l)[:3000])
    html = client.get("/aide?service=toodego&page=https://www.toodego.com/demarche/x").get_data(as_text=True)
    print("\n".join(l for l in html.splitlines() if 'hidden' in l or 'page' in l)[:3000])
    print(client.get("/aide").get_data(as_text=True)[-2500:])
