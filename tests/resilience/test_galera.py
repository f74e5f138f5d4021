"""Two app instances writing through two nodes of a real multi-primary MariaDB Galera cluster.

Row locks do not span Galera nodes: two transactions on two nodes can both lock and read the same
account row, and the second to commit is aborted with 1213 (a certification failure). What keeps the
money right is therefore not one server's locks but the design: ``services.db.atomic`` runs the whole
unit of work again on 1213, and every request that moves money is idempotent. Each test here sends
concurrent requests half to instance A (node 1) and half to instance B (node 2), then checks the
money on node 3 and runs ``ledger check`` on every node.

Runs in the MySQL pass of the suite (and wherever ``GALERA_TESTS=1``); in CI it must not skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sanic import Sanic
from sanic.response import empty

from tests.account_helpers import card_balance, open_account, top_up
from tests.conftest import MYSQL_URL, LiveServer, free_port
from tests.e2e.servers import ROOT, ServerProcess, server_env
from tests.helpers import Sandbox
from tests.partner_helpers import PartnerCreds, bound_car, call, debit_body
from tests.payment_helpers import create_order, pay
from tests.resilience import mariadb as galera

DATABASE = "openbank_galera"
why_not = galera.available()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (MYSQL_URL or os.environ.get("GALERA_TESTS")), reason="the MySQL pass runs the cluster"),
]


class Deployment:
    """The cluster, and the two instances: ``a`` on node 1, ``b`` on node 2 (sharing var/: one set of keys
    and one set of emulators, as two hosts behind one load balancer share their secrets and WeChat)."""

    def __init__(self, cluster: galera.Cluster, var: Path, notify_port: int) -> None:
        self.cluster, self.var = cluster, var
        self.notify_url = f"http://127.0.0.1:{notify_port}/notify"
        self.a = self.b = None

    def env(self, node: galera.Node) -> dict:
        return server_env(self.var, DATABASE_URL=node.url(DATABASE), SANDBOX_ROUTES="1",
                          WECHATPAY_NOTIFY_URL=self.notify_url)

    def cli(self, node: galera.Node, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=self.env(node),
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    if why_not:
        if os.environ.get("CI"):
            pytest.fail(f"the Galera scale-out test must run in CI: {why_not}")
        pytest.skip(why_not)
    cluster = galera.Cluster(3).start()
    var = tmp_path_factory.mktemp("galera-var")
    deploy = Deployment(cluster, var, free_port())
    try:
        with cluster.nodes[0].connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        migrated = deploy.cli(cluster.nodes[0], "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        deploy.a = ServerProcess(free_port(), deploy.env(cluster.nodes[0]), var / "a.log")
        deploy.a.wait_ready()
        deploy.b = ServerProcess(free_port(), deploy.env(cluster.nodes[1]), var / "b.log")
        deploy.b.wait_ready()
        yield deploy
    finally:
        for server in (deploy.a, deploy.b):
            if server is not None:
                server.stop()
        cluster.stop()


def _ledger_checks(deploy: Deployment) -> list[str]:
    """``ledger check`` on every node: what it says where it does not pass."""
    bad = []
    for node in deploy.cluster.nodes:
        checked = deploy.cli(node, "ledger", "check")
        if checked.returncode != 0:
            bad.append(f"{node.name}: {checked.stdout}{checked.stderr}")
    return bad


def _on_node3(deploy: Deployment, sql: str, *args) -> tuple:
    with deploy.cluster.nodes[2].connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def _conflicts(deploy: Deployment) -> int:
    """Transactions the cluster aborted at certification, on the instances' nodes."""
    return sum(int(n.status("wsrep_local_cert_failures") or 0) + int(n.status("wsrep_local_bf_aborts") or 0)
               for n in deploy.cluster.nodes[:2])


async def test_the_cluster_is_three_synced_primaries(deployment):
    assert deployment.cluster.size() == 3
    assert [n.status("wsrep_local_state_comment") for n in deployment.cluster.nodes] == ["Synced"] * 3


async def until_known(client, partner, body: dict, *, tries: int = 10):
    """A debit sent as a partner must: a 503 means the outcome is unknown (a conflict that outlasted the
    server's own tries, on a hot account), so the same request is sent again until it is answered."""
    for _ in range(tries):
        resp = await call(client, partner, "POST", "/open/v1/debits", body)
        if resp.status_code != 503:
            return resp
        await asyncio.sleep(float(resp.headers.get("retry-after", "1")) * random.random())
    return resp


async def test_concurrent_debits_on_one_account_through_two_nodes_book_exactly_what_fits(deployment):
    async with httpx.AsyncClient(base_url=deployment.a.url, timeout=120, trust_env=False) as a, \
            httpx.AsyncClient(base_url=deployment.b.url, timeout=120, trust_env=False) as b:
        made = deployment.cli(deployment.cluster.nodes[0], "partner", "create", "--name", "高速公路",
                              "--scopes", "etc:debit")
        assert made.returncode == 0, made.stderr
        found = json.loads(made.stdout)
        partner = PartnerCreds(found["app_id"], found["secret"], found["scopes"])
        car = await bound_car(a, Sandbox(a), balance_fen=1_000)
        before = _conflicts(deployment)

        sent = [(client, debit_body(car, 100)) for client in [a, b] * 15]
        answers = await asyncio.gather(*(until_known(client, partner, body) for client, body in sent))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 10 + [422] * 20, [r.text for r in answers if r.status_code not in (201, 422)]
        assert {r.json()["error"]["code"] for r in answers if r.status_code == 422} == {"INSUFFICIENT_FUNDS"}
        # each debit sent again, to the other instance, is answered from its record: nothing booked twice
        other = {id(a): b, id(b): a}
        again = await asyncio.gather(*(call(other[id(client)], partner, "POST", "/open/v1/debits", body)
                                       for client, body in sent))
        assert [r.json() for r in again] == [r.json() for r in answers]
        assert all(r.headers.get("idempotent-replayed") == "true" for r in again)

    balance, = _on_node3(deployment, "SELECT balance_fen FROM accounts WHERE id = %s", car.account["id"])
    booked, = _on_node3(deployment, "SELECT COUNT(*) FROM partner_debits WHERE binding_id = %s AND status = 'succeeded'",
                        car.binding["id"])
    assert (balance, booked) == (0, 10)
    assert _ledger_checks(deployment) == []
    # the burst did meet the cluster's conflicts (else it would prove nothing about running them again)
    conflicts = _conflicts(deployment) - before
    print(f"certification conflicts during the burst, each run again: {conflicts}")
    assert conflicts > 0


async def test_concurrent_top_ups_through_two_nodes_never_pass_the_class_iii_cap(deployment):
    async with httpx.AsyncClient(base_url=deployment.a.url, timeout=120, trust_env=False) as a, \
            httpx.AsyncClient(base_url=deployment.b.url, timeout=120, trust_env=False) as b:
        user, person, account = await open_account(a, Sandbox(a), "III", card_balance_fen=1_000_000)
        cap = account["limits"]["balance_cap_fen"]
        answers = await asyncio.gather(*(top_up(client, user, account["id"], 30_000) for client in [a, b] * 6))
        fits = cap // 30_000
        assert sorted(r.status_code for r in answers) == [201] * fits + [422] * (12 - fits), \
            [r.text for r in answers if r.status_code not in (201, 422)]
        assert {r.json()["error"]["code"] for r in answers if r.status_code == 422} == {"BALANCE_CAP_EXCEEDED"}
        # the card was pulled exactly once for each top-up that went through
        assert await card_balance(a, person.card_number) == 1_000_000 - fits * 30_000

    balance, = _on_node3(deployment, "SELECT balance_fen FROM accounts WHERE id = %s", account["id"])
    assert balance == fits * 30_000 <= cap
    assert _ledger_checks(deployment) == []


async def test_one_notification_delivered_to_both_instances_credits_once(deployment):
    caught: list[tuple[dict, bytes]] = []
    receiver = Sanic("galera_wechatpay_capture")

    @receiver.post("/notify")
    async def notify(request):
        caught.append(({k: v for k, v in request.headers.items() if k.lower().startswith("wechatpay")}, request.body))
        return empty(status=204)

    capture = LiveServer(receiver, int(deployment.notify_url.split(":")[2].split("/")[0]))
    await capture.start()
    try:
        async with httpx.AsyncClient(base_url=deployment.a.url, timeout=120, trust_env=False) as a:
            made = deployment.cli(deployment.cluster.nodes[0], "partner", "create", "--name", "停车场",
                                  "--scopes", "parking:debit")
            found = json.loads(made.stdout)
            partner = PartnerCreds(found["app_id"], found["secret"], found["scopes"])
            car = await bound_car(a, Sandbox(a), balance_fen=100)
            owed = await call(a, partner, "POST", "/open/v1/debits", debit_body(car, 1_500, category="parking"))
            assert owed.status_code == 422, owed.text
            order = (await create_order(a, car.user, car.binding["id"])).json()
            await pay(a, order)
            for _ in range(200):
                if caught:
                    break
                await asyncio.sleep(0.05)
    finally:
        await capture.stop()
    assert len(caught) == 1
    headers, body = caught[0]
    async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
        answers = await asyncio.gather(*(
            http.post(f"{base}/callbacks/wechatpay", content=body, headers={**headers, "Content-Type": "application/json"})
            for base in [deployment.a.url, deployment.b.url] * 10))
    assert [r.status_code for r in answers] == [204] * 20, [r.text for r in answers if r.status_code != 204]

    status, = _on_node3(deployment, "SELECT status FROM payment_orders WHERE id = %s", order["id"])
    inbox, = _on_node3(deployment, "SELECT COUNT(*) FROM pay_notifications WHERE out_trade_no = %s", order["out_trade_no"])
    moved, = _on_node3(deployment, "SELECT COUNT(*) FROM audit_events WHERE entity_type = 'payment_order' "
                                   "AND entity_id = %s AND action = 'payment_order.paid'", str(order["id"]))
    arrears, = _on_node3(deployment, "SELECT arrears_fen FROM etc_bindings WHERE id = %s", car.binding["id"])
    assert (status, inbox, moved, arrears) == ("paid", 1, 1, 0)
    verified = deployment.cli(deployment.cluster.nodes[2], "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def _until_answered(send, *, tries: int = 10):
    """A request whose outcome a 503 leaves unknown (a conflict that outlasted the server's tries), sent
    again until answered; a 202 closing is asked again under its key until the card network's answer is in."""
    for _ in range(tries):
        resp = await send()
        if resp.status_code not in (202, 503):
            return resp
        await asyncio.sleep(float(resp.headers.get("retry-after", "0.5")) * random.random())
    return resp


async def test_closing_and_debits_through_two_nodes_pay_out_what_was_not_debited(deployment):
    """A debit through instance A (node 1) races the unbinding and closing of the same account through
    instance B (node 2), on many accounts at once: either the debit is booked and the rest paid to the card,
    or the debit is refused and the whole balance paid; never both, never neither."""
    from tests.account_helpers import new_key
    from tests.contract_helpers import fresh_face

    balance, debit_fen, rounds = 1_000, 300, 8
    async with httpx.AsyncClient(base_url=deployment.a.url, timeout=120, trust_env=False) as a, \
            httpx.AsyncClient(base_url=deployment.b.url, timeout=120, trust_env=False) as b:
        made = deployment.cli(deployment.cluster.nodes[0], "partner", "create", "--name", "高速公路收费",
                              "--scopes", "etc:debit")
        assert made.returncode == 0, made.stderr
        found = json.loads(made.stdout)
        partner = PartnerCreds(found["app_id"], found["secret"], found["scopes"])
        cars = [await bound_car(a, Sandbox(a), balance_fen=balance) for _ in range(rounds)]
        faces = [await fresh_face(b, Sandbox(b), car.user) for car in cars]
        assert [await card_balance(a, car.person.card_number) for car in cars] == [0] * rounds

        async def debit(car):
            return await until_known(a, partner, debit_body(car, debit_fen))

        async def unbind_and_close(car, verify_id):
            unbound = await _until_answered(lambda: b.delete(f"/api/v1/etc-bindings/{car.binding['id']}",
                                                             headers=car.user.headers))
            assert unbound.status_code == 200, unbound.text
            key = new_key()
            return await _until_answered(lambda: b.post(
                f"/api/v1/accounts/{car.account['id']}/close", json={"verify_id": verify_id},
                headers={**car.user.headers, "Idempotency-Key": key}))

        answers = await asyncio.gather(*(asyncio.gather(debit(car), unbind_and_close(car, verify_id))
                                         for car, verify_id in zip(cars, faces)))
        outcomes = []
        for car, (debited, closed) in zip(cars, answers):
            assert closed.status_code == 200, closed.text
            assert closed.json()["account"]["status"] == "closed"
            assert debited.status_code in (201, 404, 409), debited.text
            if debited.status_code != 201:
                assert debited.json()["error"]["code"] in ("BINDING_NOT_FOUND", "ACCOUNT_CLOSED"), debited.text
            paid = await card_balance(a, car.person.card_number)
            booked, = _on_node3(deployment, "SELECT COALESCE(SUM(amount_fen), 0) FROM partner_debits "
                                "WHERE account_id = %s AND status = 'succeeded'", car.account["id"])
            left, status = _on_node3(deployment, "SELECT balance_fen, status FROM accounts WHERE id = %s",
                                     car.account["id"])
            assert (paid + int(booked), left, status) == (balance, 0, "closed"), (car.account["id"], paid, booked)
            assert int(booked) == (debit_fen if debited.status_code == 201 else 0)
            outcomes.append(debited.status_code)
        print(f"debits booked before the closing: {outcomes.count(201)} of {rounds}")
    assert _ledger_checks(deployment) == []
