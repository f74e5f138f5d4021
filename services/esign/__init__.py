"""E-signing: contract templates, PDF rendering, the bank's signing identity, PAdES signing, verification.

Pure, synchronous cores with async wrappers (run in a thread); no database access here. The contract
entity, its state machine and the evidence record live with the lead's model and service layer.

* ``templates``: ``TEMPLATES``
* ``render``: ``render_contract(code, context, *, variant, contract_ref) -> RenderedPdf``
* ``certs``: ``BankSigningIdentity``, ``ensure_dev_identity(var_dir)``, ``load_bank_identity(...)``
* ``signing``: ``sign_contract(...)``, ``sign_contract_async(...)``
* ``verification``: ``verify_pdf(data, *, trust_roots)``, ``verify_pdf_async(...)``
"""
