"""Contracts are rendered and signed in worker processes (pyHanko and reportlab hold the GIL), and the
results, errors included, come back as if the work had run here."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal

import pytest

from core.errors import AppError
from services.esign.certs import BankSigningIdentity
from services.esign.errors import SignatureImageInvalid
from services.esign.pool import ContractWorkers, IdentitySource
from services.esign.verification import verify_pdf_async

from .helpers import CONTEXT, SIGNED_AT, SIGNER_LINES, signature_png


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pool-var"))


@pytest.fixture
async def workers(var_dir):
    source = IdentitySource(sandbox=True, var_dir=var_dir)
    pool = ContractWorkers(processes=2, identity=source.load(), source=source, font_path=None)
    yield pool
    pool.close()


def test_app_errors_survive_pickling_with_code_status_and_field():
    err = SignatureImageInvalid("签名图片过大", field="signature")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SignatureImageInvalid and back.body() == err.body() and back.status == 422
    plain = pickle.loads(pickle.dumps(AppError("x", code="SOME_CODE", status=409, headers={"Retry-After": "1"})))
    assert (plain.code, plain.status, plain.headers) == ("SOME_CODE", 409, {"Retry-After": "1"})


async def test_render_and_sign_run_in_other_processes_and_verify(workers, var_dir):
    pids = await workers.warm_up()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    rendered = await workers.render("account_agreement", CONTEXT, contract_ref="C-POOL-0001")
    signed = await workers.sign(rendered.pdf, signature_png=signature_png(), signer_lines=SIGNER_LINES,
                                signed_at=SIGNED_AT)
    identity = BankSigningIdentity.dev(var_dir)
    result = await verify_pdf_async(signed, trust_roots=identity.trust_roots)
    assert result.ok and result.contract_ref == "C-POOL-0001"


async def test_concurrent_signings_all_succeed(workers):
    rendered = await workers.render("privacy_consent", CONTEXT, contract_ref="C-POOL-0002")
    results = await asyncio.gather(*[
        workers.sign(rendered.pdf, signature_png=signature_png(), signer_lines=SIGNER_LINES, signed_at=SIGNED_AT)
        for _ in range(6)
    ])
    assert all(r.startswith(b"%PDF") for r in results)


async def test_an_error_in_a_worker_arrives_as_the_same_error(workers):
    rendered = await workers.render("privacy_consent", CONTEXT, contract_ref="C-POOL-0003")
    with pytest.raises(SignatureImageInvalid) as caught:
        await workers.sign(rendered.pdf, signature_png=b"", signer_lines=SIGNER_LINES, signed_at=SIGNED_AT)
    assert caught.value.field == "signature" and caught.value.code == "SIGNATURE_IMAGE_INVALID"


async def test_a_dead_worker_process_is_replaced(workers):
    pids = await workers.warm_up()
    os.kill(pids[0], signal.SIGKILL)
    await asyncio.sleep(0.2)
    rendered = await workers.render("privacy_consent", CONTEXT, contract_ref="C-POOL-0004")
    assert rendered.pdf.startswith(b"%PDF")
    assert pids[0] not in await workers.warm_up()


async def test_zero_processes_signs_in_a_thread_here(var_dir):
    source = IdentitySource(sandbox=True, var_dir=var_dir)
    inline = ContractWorkers(processes=0, identity=source.load(), source=source, font_path=None)
    assert await inline.warm_up() == []
    rendered = await inline.render("privacy_consent", CONTEXT, contract_ref="C-POOL-0005")
    signed = await inline.sign(rendered.pdf, signature_png=signature_png(), signer_lines=SIGNER_LINES,
                               signed_at=SIGNED_AT)
    assert signed.startswith(b"%PDF")
